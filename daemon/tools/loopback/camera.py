"""A camera made by hand: a PUSH socket that sends the frames, or raw parts, it is given.

For exact sequences (these seq numbers, this image, this malformed message) where the
simulator (`defectd.daemon.clients.simulator`) would send a line of its own.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import zmq

from defectd.daemon.protocol import FrameHeader, encode_frame
from defectd.daemon.tools.loopback.line import FRAME_HEIGHT, FRAME_WIDTH


class Camera:
    """A PUSH socket connected to `endpoint` (the daemon's PULL), sending mono8 frames.

    `context`: the caller's ZeroMQ context (it closes the socket with it), or None for one
    of its own, ended by `close`. `linger_ms`: how long `close` waits for queued frames.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        width: int = FRAME_WIDTH,
        height: int = FRAME_HEIGHT,
        linger_ms: int = 2000,
    ) -> None:
        self.width, self.height = width, height
        self._own = context is None
        self._context: zmq.Context[zmq.Socket[bytes]] = context or zmq.Context()
        self.socket = self._context.socket(zmq.PUSH)
        self.socket.setsockopt(zmq.LINGER, linger_ms)
        self.socket.connect(endpoint)

    def __enter__(self) -> Camera:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, camera: str, seq: int, image: np.ndarray | None = None, **extra: Any) -> None:
        """One frame of `camera` (blank unless `image`); `extra`: more `FrameHeader` fields."""
        pixels = np.zeros((self.height, self.width), np.uint8) if image is None else image
        header = FrameHeader(
            camera_id=camera,
            seq=seq,
            capture_ns=time.time_ns(),
            encoding="mono8",
            width=self.width,
            height=self.height,
            **extra,
        )
        self.socket.send_multipart(encode_frame(header, pixels.tobytes(), with_topic=False))

    def send_raw(self, parts: list[bytes]) -> None:
        """`parts` as they are: for messages the daemon must reject."""
        self.socket.send_multipart(parts)

    def close(self) -> None:
        """Close the socket (after up to `linger_ms` for what is queued), and the context if
        it is this camera's own."""
        self.socket.close()
        if self._own:
            self._context.term()


class PacedCamera:
    """One camera sending `images` in turn at `fps` from a thread, seq 0, 1, 2, ... until
    `stop` (which returns how many it sent); `sent` is the next seq at any moment."""

    def __init__(self, endpoint: str, camera: str, images: list[np.ndarray], fps: float) -> None:
        self._endpoint = endpoint
        self._camera = camera
        self._images = images
        self._period = 1.0 / fps
        self._stop = threading.Event()
        self.sent = 0
        self._thread = threading.Thread(target=self._run, name=f"camera-{camera}", daemon=True)

    def __enter__(self) -> PacedCamera:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> int:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        return self.sent

    def _run(self) -> None:
        height, width = self._images[0].shape
        with Camera(self._endpoint, width=width, height=height) as camera:
            next_at = time.monotonic()
            while not self._stop.is_set():
                image = self._images[self.sent % len(self._images)]
                camera.send(self._camera, self.sent, image)
                self.sent += 1
                next_at += self._period
                self._stop.wait(max(0.0, next_at - time.monotonic()))
