"""A camera as a process of its own: binds PUB and publishes blank mono8 frames.

``python -m tests.reliability.pub_camera ENDPOINT CAMERA FPS START_SEQ`` prints
``bound <time_ns>`` once its socket is bound, then sends ``[camera, header, payload]`` with
seq START_SEQ, START_SEQ + 1, … until killed. Only zmq and json: it starts in a fraction of a
second, so a restart test measures the daemon's reconnect, not this process's imports.
"""

from __future__ import annotations

import json
import sys
import time

import zmq

HEIGHT, WIDTH = 256, 1600


def main(endpoint: str, camera: str, fps: float, start_seq: int) -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sock = context.socket(zmq.PUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(endpoint)
    print(f"bound {time.time_ns()}", flush=True)
    payload = bytes(HEIGHT * WIDTH)
    seq, period, next_at = start_seq, 1.0 / fps, time.monotonic()
    while True:
        header = {
            "camera_id": camera,
            "seq": seq,
            "capture_ns": time.time_ns(),
            "encoding": "mono8",
            "width": WIDTH,
            "height": HEIGHT,
        }
        sock.send_multipart([camera.encode(), json.dumps(header).encode(), payload])
        seq += 1
        next_at += period
        time.sleep(max(0.0, next_at - time.monotonic()))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
