"""The JSON API of INTERFACE.md section 6 over a real store and a real HTTP server."""

from __future__ import annotations

import base64
import json
import socket
import time
from datetime import datetime
from pathlib import Path

import pytest

from birdstream.web import ReviewPolicy
from tests.web.conftest import Served, get_json, http, sighting_events

DAY0 = 1_780_000_000.0  # a fixed past time: 2026-05-28


def test_pages_of_sightings_follow_the_cursor_newest_first(served: Served) -> None:
    for i in range(7):
        served.add(sighting_events(DAY0 + 60 * i, species="Indian Roller" if i % 2 else "Scarlet Tanager",
                                   stream="feeder" if i < 5 else "pond"))
    seen, url = [], served.base + "/api/sightings?limit=3"
    while url:
        status, page = get_json(url)
        assert status == 200 and len(page["sightings"]) <= 3
        seen += page["sightings"]
        url = f"{served.base}/api/sightings?limit=3&before={page['next']}" if page["next"] else None
    starts = [s["started_at"] for s in seen]
    assert len(seen) == 7 and len({s["id"] for s in seen}) == 7 and starts == sorted(starts, reverse=True)
    s = seen[0]
    assert set(s) >= {"id", "station", "stream", "species", "score", "started_at", "ended_at", "frames", "box",
                      "snapshot_url", "model", "media_start_s", "media_end_s", "review", "top"}
    assert s["ended_at"] is not None and s["frames"] == 4 and s["review"] is None

    assert len(get_json(served.base + "/api/sightings?stream=pond")[1]["sightings"]) == 2
    since = "2026-05-28T20:29:00Z"  # DAY0 is 20:26:40: 20:29:40, 20:30:40, 20:31:40 are in
    window = get_json(f"{served.base}/api/sightings?since={since}&until=2026-05-28T20:32:00%2B00:00")[1]
    assert [x["started_at"] for x in window["sightings"]] == starts[1:4]
    species = get_json(served.base + "/api/species")[1]["species"]
    assert {(x["species"], x["count"]) for x in species} == {("Scarlet Tanager", 4), ("Indian Roller", 3)}


def test_one_sighting_has_its_events_and_box(served: Served) -> None:
    events = sighting_events(DAY0, n_updates=3, box=[0.1, 0.2, 0.3, 0.25])
    served.add(events)
    status, s = get_json(f"{served.base}/api/sightings/{events[0]['id']}")
    assert status == 200 and s["box"] == [0.1, 0.2, 0.3, 0.25]
    assert [e["seq"] for e in s["events"]] == [0, 1, 2, 3, 4] and s["events"] == events
    status, body = get_json(served.base + "/api/sightings/00000000-0000-0000-0000-000000000000")
    assert status == 404 and "no sighting" in body["error"]


def test_a_review_changes_the_counts_and_is_published(served: Served) -> None:
    a, b = sighting_events(DAY0), sighting_events(DAY0 + 60)
    served.add(a + b)
    url = f"{served.base}/api/sightings/{a[0]['id']}/review"
    status, _, body = http(url, {"verdict": "false"})
    assert status == 200 and json.loads(body)["review"] == "false"
    assert get_json(served.base + "/api/species")[1]["species"][0]["count"] == 1
    status, _, body = http(f"{served.base}/api/sightings/{b[0]['id']}/review", {"verdict": "relabel",
                                                                                 "species": "House Sparrow"})
    s = json.loads(body)
    assert status == 200 and (s["species"], s["label"], s["review"]) == ("House Sparrow", "Indian Roller", "relabel")
    assert [x["species"] for x in get_json(served.base + "/api/species")[1]["species"]] == ["House Sparrow"]
    assert [r[:2] for r in served.reviews] == [("feeder", a[0]["id"]), ("feeder", b[0]["id"])]
    # A later event of the relabelled sighting (a replay) keeps the reviewer's species.
    served.add([dict(b[-1], seq=9)])
    assert get_json(f"{served.base}/api/sightings/{b[0]['id']}")[1]["species"] == "House Sparrow"
    reviews = (served.state_dir / "reviews.jsonl").read_text().splitlines()
    assert [json.loads(line)["verdict"] for line in reviews] == ["false", "relabel"]


@pytest.mark.parametrize("query", [
    "limit=0", "limit=501", "limit=ten", "since=yesterday", "since=2026-05-01T06:00:00", "until=2026-13-01T00:00:00Z",
    "before=nonsense", "stream=Bad%20Stream", "colour=red", "limit=5&sort=asc",
])
def test_bad_query_parameters_are_400_naming_them(served: Served, query: str) -> None:
    status, body = get_json(f"{served.base}/api/sightings?{query}")
    key = query.split("=")[0] if "sort" not in query else "sort"
    assert status == 400 and key in body["error"], body


@pytest.mark.parametrize("body, needle", [
    ({"verdict": "maybe"}, "verdict"), ({"verdict": "relabel", "species": "Dodo"}, "Dodo"),
    ({"verdict": "relabel"}, "species"), (["correct"], "verdict"), (b"{not json", "JSON"),
    ({"verdict": "false", "extra": 1}, "extra"),
])
def test_bad_review_bodies_are_400_and_change_nothing(served: Served, body: object, needle: str) -> None:
    events = sighting_events(DAY0)
    served.add(events)
    status, _, answer = http(f"{served.base}/api/sightings/{events[0]['id']}/review", body)
    assert status == 400 and needle in json.loads(answer)["error"]
    assert get_json(f"{served.base}/api/sightings/{events[0]['id']}")[1]["review"] is None and not served.reviews
    status, _, _ = http(f"{served.base}/api/sightings/{events[0]['id']}/review", b'{"verdict":"false"}',
                        {"Content-Type": "text/plain"})
    assert status == 400  # a cross-site form cannot post a review
    assert http(served.base + "/api/sightings/nope/review", {"verdict": "false"})[0] == 404


def test_snapshots_are_served_and_paths_cannot_leave_the_folder(served: Served) -> None:
    snap = served.state_dir / "snapshots" / "feeder" / "a.jpg"
    snap.parent.mkdir(parents=True)
    snap.write_bytes(b"\xff\xd8\xff\xe0 a jpeg")
    (served.state_dir / "secret.jpg").write_bytes(b"not for you")
    (served.state_dir / "snapshots" / "link.jpg").symlink_to(served.state_dir / "secret.jpg")
    served.add(sighting_events(DAY0, snapshot="snapshots/feeder/a.jpg"))
    url = get_json(served.base + "/api/sightings")[1]["sightings"][0]["snapshot_url"]
    status, headers, body = http(served.base + url)
    assert (status, headers["content-type"], body) == (200, "image/jpeg", snap.read_bytes())
    snap.unlink()  # snapshots are pruned sooner than the store: no URL to a missing file
    assert get_json(served.base + "/api/sightings")[1]["sightings"][0]["snapshot_url"] is None
    for trick in ("../secret.jpg", "%2e%2e/secret.jpg", "..%2fsecret.jpg", "feeder/..%2f..%2fsecret.jpg",
                  "link.jpg", "%2fetc%2fpasswd", "feeder/../../sightings.sqlite3", "feeder"):
        status, _, body = http(f"{served.base}/snapshots/{trick}")
        assert 400 <= status < 500 and b"not for you" not in body, trick


def test_big_bodies_are_refused(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    events = sighting_events(DAY0)
    served.add(events)
    status, _, body = http(f"{served.base}/api/sightings/{events[0]['id']}/review",
                           b'{"verdict": "false", "pad": "' + b"x" * 100_000 + b'"}')
    assert status == 413 and get_json(f"{served.base}/api/sightings/{events[0]['id']}")[1]["review"] is None
    # Chunked, so no Content-Length to refuse up front: cut off while it is read, still a 413.
    sock = socket.create_connection(("127.0.0.1", served.endpoint.port), timeout=20)
    sock.sendall(f"POST /api/sightings/{events[0]['id']}/review HTTP/1.1\r\nHost: localhost\r\n"
                 "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
    for _ in range(10):
        sock.sendall(b"2710\r\n" + b"x" * 10_000 + b"\r\n")
    sock.sendall(b"0\r\n\r\n")
    assert sock.recv(4096).startswith(b"HTTP/1.1 413")
    sock.close()
    assert not [r for r in caplog.records if r.exc_info]


def test_events_stream_new_sightings_as_they_are_stored(served: Served) -> None:
    sock = socket.create_connection(("127.0.0.1", served.endpoint.port), timeout=20)
    sock.sendall(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
    received = b""
    while b": connected" not in received:
        received += sock.recv(4096)
    assert b"text/event-stream" in received
    events = sighting_events(DAY0)
    served.add(events)
    deadline = time.monotonic() + 20
    while received.count(b"data: {") < len(events) and time.monotonic() < deadline:
        received += sock.recv(65536)
    sock.close()
    lines = [line[6:] for line in received.split(b"\n") if line.startswith(b"data: {")]
    assert [json.loads(line)["seq"] for line in lines] == [0, 1, 2]


def _served(tmp_path: Path, policy: ReviewPolicy) -> Served:
    server = Served(tmp_path / "state", policy)
    server.add(sighting_events(DAY0))
    return server


def test_off_loopback_reviews_are_refused_unless_logged_in(tmp_path: Path) -> None:
    server = _served(tmp_path / "ro", ReviewPolicy(loopback=False))
    try:
        sid = get_json(server.base + "/api/sightings")[1]["sightings"][0]["id"]
        status, _, body = http(f"{server.base}/api/sightings/{sid}/review", {"verdict": "false"})
        assert status == 403 and "read-only" in json.loads(body)["error"]
        assert get_json(f"{server.base}/api/sightings/{sid}")[1]["review"] is None
    finally:
        server.close()
    server = _served(tmp_path / "auth", ReviewPolicy(loopback=False, username="owner", password="s3cret:pw"))
    try:
        sid = get_json(server.base + "/api/sightings")[1]["sightings"][0]["id"]
        url = f"{server.base}/api/sightings/{sid}/review"
        status, headers, _ = http(url, {"verdict": "false"})
        assert status == 401 and headers["www-authenticate"].startswith("Basic")
        wrong = base64.b64encode(b"owner:nope").decode()
        assert http(url, {"verdict": "false"}, {"Authorization": f"Basic {wrong}"})[0] == 401
        assert http(url, {"verdict": "false"}, {"Authorization": "Basic !!!"})[0] == 401
        assert get_json(f"{server.base}/api/sightings/{sid}")[1]["review"] is None
        right = base64.b64encode(b"owner:s3cret:pw").decode()
        assert http(url, {"verdict": "false"}, {"Authorization": f"Basic {right}"})[0] == 200
    finally:
        server.close()


def test_pages_escape_names_and_check_their_parameters(served: Served) -> None:
    served.add(sighting_events(DAY0, species="Indian Roller"))
    status, _, body = http(served.base + "/species/%3Cscript%3Ealert(1)")
    assert status == 404 and b"<script>alert" not in body and b"&lt;script&gt;" in body
    status, headers, body = http(served.base + "/species/Indian%20Roller")
    assert status == 200 and headers["content-type"].startswith("text/html") and b"Indian Roller" in body
    assert http(served.base + "/?date=2026-05-28")[0] == 200
    for query in ("date=yesterday", "date=2026-02-30", "date=9999-01-01", "page=2"):
        status, _, body = http(f"{served.base}/?{query}")
        assert status == 400 and query.split("=")[0] in json.loads(body)["error"], query
    assert http(served.base + "/static/../pages.py")[0] == 404 and http(served.base + "/static/nope.js")[0] == 404


def test_a_store_that_cannot_be_read_is_a_503_not_a_traceback(tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    from birdstream.publish.store_query import StoreReader
    from birdstream.service.http import HttpEndpoint
    from birdstream.service.sdnotify import Notifier
    from birdstream.service.supervisor import Supervisor
    from birdstream.web import Site

    state = tmp_path / "state"  # no store yet: the writer is still rebuilding it
    state.mkdir()
    site = Site(state_dir=state, station="garden", reader=StoreReader(state))
    supervisor = Supervisor(health_file=None, notifier=Notifier(None))
    with HttpEndpoint("127.0.0.1", 0, supervisor.snapshot, site=site).start() as endpoint:
        for path in ("/api/sightings", "/", "/api/species"):
            status, _, body = http(f"http://127.0.0.1:{endpoint.port}{path}")
            assert status == 503 and "sightings store cannot be read" in json.loads(body)["error"], path
    assert not [r for r in caplog.records if r.exc_info]


def test_a_busy_day_pages_its_cards(served: Served) -> None:
    import re

    now = time.time()
    start = max(now - 7000, datetime.now().replace(hour=0, minute=0, second=0).timestamp() + 1)
    served.add([e for i in range(130) for e in sighting_events(start + i * (now - 60 - start) / 130, n_updates=0)])
    status, _, body = http(served.base + "/")
    page = body.decode()
    assert status == 200 and page.count('<article class="card') == 120 and ">130 sightings<" in page.replace(
        '<span class="muted">', ">")
    link = re.search(r'href="(/\?date=[^"]+)"[^>]*>older sightings', page).group(1).replace("&amp;", "&")
    status, _, body = http(served.base + link)
    assert status == 200 and body.decode().count('<article class="card') == 10


def test_on_loopback_a_review_under_another_host_name_is_refused(served: Served) -> None:
    events = sighting_events(DAY0)
    served.add(events)
    url = f"{served.base}/api/sightings/{events[0]['id']}/review"
    status, _, body = http(url, {"verdict": "false"}, {"Host": "evil.example:9108"})  # DNS rebinding
    assert status == 403 and "localhost" in json.loads(body)["error"] and not served.reviews
    for host in ("localhost:9108", "127.0.0.1", "[::1]:9108"):
        assert http(url, {"verdict": "correct"}, {"Host": host})[0] == 200, host


def test_a_species_first_at_the_station_is_flagged_for_review_until_reviewed(served: Served) -> None:
    now = time.time()
    start = max(now - 600, datetime.now().replace(hour=0, minute=0, second=0).timestamp() + 1)
    first = [dict(e, first_at_station=True) for e in sighting_events(start, species="Hoopoe")]
    again = sighting_events(start + 60, species="Hoopoe")
    served.add(first + again)
    s = get_json(f"{served.base}/api/sightings/{first[0]['id']}")[1]
    assert s["first_at_station"] is True
    assert get_json(f"{served.base}/api/sightings/{again[0]['id']}")[1]["first_at_station"] is False
    page = http(served.base + "/")[2].decode()
    assert page.count("first at this station") == 1
    assert http(f"{served.base}/api/sightings/{first[0]['id']}/review", {"verdict": "correct"})[0] == 200
    assert "first at this station" not in http(served.base + "/")[2].decode()
