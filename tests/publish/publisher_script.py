"""A publisher process for the durability tests: run as ``python publisher_script.py MODE ...``.

MODE ``queue STATE_DIR PORT N``: start, publish one sighting of N events, print ``stored`` once they
are on disk, then wait to be killed. MODE ``drain STATE_DIR PORT``: start, print ``online`` when
connected, wait until the outbox is empty, close, print ``drained``; with a 4th argument ``hold``
wait to be killed after ``online``.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

from birdstream.publish import Publisher
from tests.support.sightings import sighting
from tests.support.options import jsonl_options, mqtt_options, outbox_options, snapshot_options


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    mode, state_dir, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    pub = Publisher(
        station="garden",
        state_dir=state_dir,
        mqtt=mqtt_options(host="127.0.0.1", port=port, reconnect_min_s=0.1, reconnect_max_s=0.5, discovery=False),
        jsonl=jsonl_options(),
        snapshots=snapshot_options(enabled=False),
        outbox=outbox_options(),
    )
    pub.start()
    if mode == "queue":
        for event in sighting(int(sys.argv[4])):
            pub.publish(event)
        if not pub.flush(10):
            return 3
        print("stored", pub.backlog, flush=True)
        threading.Event().wait()  # until SIGKILL
    deadline = time.monotonic() + 20
    while not pub.connected and time.monotonic() < deadline:
        time.sleep(0.02)
    print("online", flush=True)
    if sys.argv[4:] == ["hold"]:
        threading.Event().wait()  # until SIGKILL
    while pub.backlog and time.monotonic() < deadline:
        time.sleep(0.02)
    left = pub.close(2.0)
    print("drained", left, flush=True)
    return 0 if left == 0 else 4


if __name__ == "__main__":
    sys.exit(main())
