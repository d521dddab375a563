"""The station's page and JSON API over the sightings store (INTERFACE.md section 6).

``routes(site)`` gives the Starlette routes; the service layer mounts them beside /healthz and
/metrics and runs the server. Templates and assets live in this package: nothing comes from a CDN.
"""

from birdstream.web.site import ReviewPolicy, Site
from birdstream.web.app import routes

__all__ = ["ReviewPolicy", "Site", "routes"]
