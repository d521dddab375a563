"""A trivial daemon for the supervisor tests: one worker thread with a heartbeat and one stream.

Writing "engine" into the wedge file freezes the heartbeat, "stream" freezes the stream's frames;
--crash makes the worker raise. Run as ``python tests/service/workload.py ...`` with the repo on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from pathlib import Path

from birdstream.messages import StreamStatus
from birdstream.service.logsetup import setup_logging
from birdstream.service.supervisor import Supervisor

log = logging.getLogger("workload")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--health-file", type=Path, required=True)
    parser.add_argument("--wedge-file", type=Path, required=True)
    parser.add_argument("--reload-file", type=Path, required=True)
    parser.add_argument("--crash", action="store_true")
    args = parser.parse_args()
    setup_logging("INFO")
    stop = threading.Event()
    beat = [time.monotonic()]
    last_frame = [time.time()]

    def work() -> None:
        n = 0
        while not stop.wait(0.02):
            n += 1
            if args.crash and n > 3:
                raise RuntimeError("worker exploded")
            wedge = args.wedge_file.read_text() if args.wedge_file.exists() else ""
            if wedge != "engine":
                beat[0] = time.monotonic()
            if wedge != "stream":
                last_frame[0] = time.time()

    worker = threading.Thread(target=work, name="worker")
    supervisor = Supervisor(health_file=args.health_file, stale_s=0.5)
    supervisor.install_signal_handlers()
    worker.start()
    # The checks the daemon registers for its engine: a fresh heartbeat, and a worker that must not end.
    supervisor.add_check("engine", lambda: f"engine: no heartbeat for {time.monotonic() - beat[0]:.0f} s"
                         if time.monotonic() - beat[0] > supervisor.stale_s else None)
    supervisor.watch_streams(lambda: [StreamStatus("cam", "running", last_frame_at=last_frame[0])])
    supervisor.add_fatal_check("worker", lambda: None if worker.is_alive() or supervisor.stopping
                               else "worker thread worker has ended")

    def reload() -> str:
        args.reload_file.write_text("reloaded")
        return "nothing changed"

    supervisor.on_reload(reload)

    def shutdown() -> None:
        stop.set()
        worker.join(5)
        log.info("shutdown done")

    return supervisor.run(shutdown)


if __name__ == "__main__":
    sys.exit(main())
