"""The camera simulator behind `defectd simulate`: frames over ZeroMQ, as cameras send them.

`Simulator(config).run(stop)` sends frames from N simulated cameras, each with its own
``seq`` counter (0, 1, 2, … per frame sent), paced by a monotonic clock against an absolute
schedule (frame n of a camera is due at start + n / fps, so no drift accumulates), until
`frames` per camera are sent, `seconds` have passed, or `stop` is set. One thread does all the
sending: ZeroMQ sockets must stay in the thread that made them, and one loop keeps the cameras
in step.

Sources: the synthetic line (with truth) or a folder of images (with truth when it is a
Severstal-layout folder: ``train.csv`` beside ``train_images/``). Frame k of the run is
``k = seq × cameras + camera index``, so cameras show different frames and a run is
reproducible.

Sockets (docs/simulator.md): cameras that bind the same endpoint share one socket (a port can
be bound once; PUB messages carry the camera id as topic, so a subscriber can still pick
cameras); cameras that connect, or bind endpoints made different by ``{i}``, ``{N+i}`` or
``{camera}`` placeholders, get one socket each.

`truth_out` writes a Kaggle-layout CSV of every frame sent, keyed by `truth_image_id`
(``"<camera_id>-<seq>.jpg"``): the camera id and seq of a published defect event name the same
image, which is how the demo scores what the daemon found.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import cv2
import numpy as np
import numpy.typing as npt
import zmq

from defectd.daemon.protocol import ENCODINGS, FrameHeader, Rejected, header_to_json
from defectd.daemon.topics import check_segment
from defectd.engines.labels import NEW_HEADER, LabelTable, read_labels
from defectd.engines.rle import encode as rle_encode
from defectd.engines.severstal import list_images
from defectd.engines.synth import SyntheticLine
from defectd.engines.synth.stats import NUM_CLASSES

log = logging.getLogger(__name__)

Mode = Literal["pub", "push"]
MODES: tuple[Mode, ...] = ("pub", "push")
SYNTH = "synth"
# Frames a socket queues before PUB drops them / PUSH blocks: 100 mono8 frames are 40 MB.
DEFAULT_SNDHWM = 100
DEFAULT_PUB_ENDPOINT = "tcp://127.0.0.1:5555"  # pub binds: the daemon's SUB connects
DEFAULT_PUSH_ENDPOINT = "tcp://127.0.0.1:5556"  # push connects to the daemon's PULL
# push promises every frame: at the end, give a busy daemon time to take the queued ones.
PUSH_LINGER_MS = 30_000
PUB_LINGER_MS = 1_000
_SEND_POLL_MS = 100  # a PUSH send blocked by back-pressure wakes this often to check `stop`
_PLACEHOLDER = re.compile(r"\{(?:(\d+)\+i|i|camera)\}")
_FILE_ENCODINGS = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png"}

UInt8Array = npt.NDArray[np.uint8]


class SimulatorError(RuntimeError):
    """The simulator cannot run: an endpoint that does not bind or connect, no subscriber."""


def truth_image_id(camera_id: str, seq: int) -> str:
    """The ImageId of a sent frame in the truth CSV: ``"<camera_id>-<seq>.jpg"``.

    A defect event's ``camera_id`` and ``seq`` give the same id, so truth and events join
    without any other bookkeeping (camera ids are clean topic segments, so the event carries
    the id unchanged).
    """
    return f"{camera_id}-{seq}.jpg"


def parse_truth_image_id(image_id: str) -> tuple[str, int]:
    """(camera_id, seq) of a `truth_image_id`; ValueError for anything else."""
    stem = image_id.removesuffix(".jpg")
    camera, _, seq = stem.rpartition("-")  # camera ids may hold "-", seq is digits only
    if stem == image_id or not camera or not seq.isdigit():
        raise ValueError(f"{image_id!r} is not a simulator image id like 'cam0-12.jpg'")
    return camera, int(seq)


def camera_endpoint(template: str, index: int, camera_id: str) -> str:
    """`template` with ``{i}`` (camera index), ``{N+i}`` (N plus index, for ports) and
    ``{camera}`` (camera id) filled in: ``tcp://127.0.0.1:{5555+i}`` → ``…:5556`` for camera 1."""

    def fill(match: re.Match[str]) -> str:
        if match.group(0) == "{camera}":
            return camera_id
        base = match.group(1)
        return str(index + (int(base) if base is not None else 0))

    endpoint = _PLACEHOLDER.sub(fill, template)
    if "{" in endpoint or "}" in endpoint:
        raise ValueError(
            f"endpoint {template!r} has an unknown placeholder: use {{i}}, {{N+i}} "
            "(e.g. tcp://127.0.0.1:{5555+i}) or {camera}"
        )
    return endpoint


@dataclass(frozen=True)
class SimulatorConfig:
    """What `defectd simulate` sends, how fast, and where (docs/simulator.md)."""

    source: str = SYNTH  # "synth", or a folder of images / a Severstal-layout folder
    seed: int = 0  # synthetic line seed
    cameras: tuple[str, ...] = ("cam0",)
    fps: float = 10.0  # per camera; 0: as fast as possible
    frames: int | None = None  # per camera; None: no limit
    seconds: float | None = None  # None: no limit
    line: str = "line1"  # for logs only: the daemon's config names the line
    mode: Mode = "pub"
    endpoint: str = DEFAULT_PUB_ENDPOINT  # may hold {i}, {N+i}, {camera}
    bind: bool = True  # bind (the daemon connects) or connect (the daemon binds)
    encoding: str | None = None  # None: mono8 for synth, the file's own format for folders
    jpeg_quality: int = 95
    sndhwm: int = DEFAULT_SNDHWM
    linger_ms: int | None = None  # how long closing waits for queued frames to leave;
    # None: PUSH_LINGER_MS for push (its frames must all arrive), PUB_LINGER_MS for pub
    coil_frames: int = 0  # frames per coil; 0: no coil_id / position_m in the headers
    coil_prefix: str = "SIM"
    mm_per_px: float = 1.0  # strip travel per frame row: position_m advances height × this
    pool: int = 0  # prepare this many distinct frames once and cycle them; 0: every frame new
    wait_subscribers: int = 0  # pub: wait for this many subscriptions per camera first
    wait_timeout_s: float = 30.0
    truth_out: Path | None = None  # Kaggle-layout truth CSV of every frame sent
    status_interval_s: float = 1.0  # how often `progress` is called
    # CURVE (docs/security.md). Connecting (push to the daemon's PULL): the daemon's public
    # .key and this camera's .key_secret. Binding (pub, the daemon connects): this camera's
    # own .key_secret as the server's key; no client key.
    curve_server_key: Path | None = None
    curve_client_key: Path | None = None

    @property
    def effective_linger_ms(self) -> int:
        if self.linger_ms is not None:
            return self.linger_ms
        return PUSH_LINGER_MS if self.mode == "push" else PUB_LINGER_MS

    def __post_init__(self) -> None:
        if not self.cameras:
            raise ValueError("give at least one camera id")
        for camera in self.cameras:
            check_segment(camera, "camera id")
        repeated = sorted({c for c in self.cameras if self.cameras.count(c) > 1})
        if repeated:
            raise ValueError(f"camera ids must differ: {', '.join(repeated)} repeats")
        for index, camera in enumerate(self.cameras):
            camera_endpoint(self.endpoint, index, camera)  # placeholders checked up front
        if self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.encoding is not None and self.encoding not in ENCODINGS:
            raise ValueError(f"encoding {self.encoding!r} is not one of {', '.join(ENCODINGS)}")
        if self.seed < 0:
            raise ValueError(f"seed must be non-negative, got {self.seed}")
        checks = (
            ("fps", self.fps, 0.0, "0 sends as fast as possible"),
            ("frames", self.frames, 1, "frames per camera"),
            ("seconds", self.seconds, 1e-9, "seconds to run"),
            ("sndhwm", self.sndhwm, 1, "frames queued per socket"),
            ("linger_ms", self.linger_ms, 0, "ms"),
            ("coil_frames", self.coil_frames, 0, "0: no coil"),
            ("mm_per_px", self.mm_per_px, 1e-9, "mm of strip per frame row"),
            ("pool", self.pool, 0, "0: every frame new"),
            ("wait_subscribers", self.wait_subscribers, 0, "subscriptions per camera"),
            ("wait_timeout_s", self.wait_timeout_s, 0.0, "seconds"),
            ("status_interval_s", self.status_interval_s, 1e-3, "seconds"),
        )
        for name, value, low, hint in checks:
            if value is not None and not value >= low:
                raise ValueError(f"{name} must be at least {low:g} ({hint}), got {value}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")
        if self.wait_subscribers and self.mode != "pub":
            raise ValueError(
                "wait_subscribers is for pub mode: a PUSH socket queues frames until the "
                "daemon connects, so nothing is lost by starting early"
            )
        if self.bind and self.curve_client_key is not None:
            raise ValueError(
                "curve_client_key is for connecting; a binding camera is the CURVE server: "
                "give only curve_server_key, its own .key_secret"
            )
        if not self.bind and (self.curve_server_key is None) != (self.curve_client_key is None):
            raise ValueError(
                "a connecting camera is a CURVE client: give both curve_server_key (the "
                "daemon's .key) and curve_client_key (this camera's .key_secret)"
            )
        # The coil ids this config makes must pass the header checks; fail before any socket.
        if self.coil_frames:
            FrameHeader(self.cameras[0], 0, 0, "mono8", 1, 1, coil_id=_coil_id(self, 0))


def _curve_setup(config: SimulatorConfig) -> Callable[[zmq.Socket[bytes]], None] | None:
    """What makes a camera socket CURVE (keys read once, before any socket), or None."""
    if config.curve_server_key is None:
        return None
    from defectd.daemon.curve import load_key_pair, load_public_key, make_client, make_server

    if config.bind:
        own = load_key_pair(config.curve_server_key)
        return lambda socket: make_server(socket, own)
    assert config.curve_client_key is not None  # __post_init__ checks they come together
    server = load_public_key(config.curve_server_key)
    keys = load_key_pair(config.curve_client_key)
    return lambda socket: make_client(socket, keys, server)


def _coil_id(config: SimulatorConfig, seq: int) -> str:
    return f"{config.coil_prefix}-{seq // config.coil_frames + 1:05d}"


@dataclass(frozen=True)
class Picture:
    """One frame ready to send: the payload (never written to after it is made: sends are
    zero-copy) with its header fields, and the truth when the source knows it."""

    payload: UInt8Array | bytes
    encoding: str
    width: int
    height: int
    truth: tuple[str, ...] | None  # Kaggle RLE per class, class 1 first; "" = clean
    name: str  # synthetic image id or file name, for logs


class FrameSource(Protocol):
    """Where frames come from; `picture(k)` is frame k of the run, deterministic."""

    @property
    def has_truth(self) -> bool: ...

    def picture(self, index: int, with_truth: bool) -> Picture: ...

    def describe(self) -> str: ...


def encode_image(image: UInt8Array, encoding: str, jpeg_quality: int = 95) -> UInt8Array:
    """A grey (H×W) or BGR (H×W×3) uint8 image as a payload in `encoding`."""
    if encoding in ("mono8", "bgr8"):
        want = 3 if encoding == "bgr8" else 1
        have = 1 if image.ndim == 2 else image.shape[2]
        if have != want:
            code = cv2.COLOR_GRAY2BGR if want == 3 else cv2.COLOR_BGR2GRAY
            image = np.asarray(cv2.cvtColor(image, code), np.uint8)
        return np.ascontiguousarray(image)
    if encoding not in ("jpeg", "png"):
        raise ValueError(f"encoding {encoding!r} is not one of {', '.join(ENCODINGS)}")
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if encoding == "jpeg" else []
    ok, data = cv2.imencode(".jpg" if encoding == "jpeg" else ".png", image, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.shape} image as {encoding}")
    return np.ascontiguousarray(data.reshape(-1), np.uint8)


class SynthSource:
    """Frames of `SyntheticLine(seed)`, with their masks as truth."""

    has_truth = True

    def __init__(self, seed: int, encoding: str = "mono8", jpeg_quality: int = 95) -> None:
        self.line = SyntheticLine(seed)
        self.encoding = encoding
        self.jpeg_quality = jpeg_quality

    def picture(self, index: int, with_truth: bool) -> Picture:
        frame = self.line.frame(index)
        payload = encode_image(frame.image, self.encoding, self.jpeg_quality)
        truth = tuple(rle_encode(mask) for mask in frame.masks) if with_truth else None
        height, width = frame.image.shape
        return Picture(payload, self.encoding, width, height, truth, frame.image_id)

    def describe(self) -> str:
        return f"synthetic line seed {self.line.seed}"


class FolderSource:
    """Image files (jpg, jpeg, png) of a folder, in name order, cycled.

    A Severstal-layout folder (``train.csv`` and ``train_images/``) gives truth from its
    labels. With `encoding` None or the file's own format the payload is the file's bytes,
    as read; any other encoding decodes the file and encodes it again.
    """

    def __init__(self, folder: Path, encoding: str | None = None, jpeg_quality: int = 95) -> None:
        folder = Path(folder)
        labels_path, images = folder / "train.csv", folder / "train_images"
        self.labels: LabelTable | None = None
        if labels_path.is_file() and images.is_dir():
            self.labels = read_labels(labels_path, num_classes=NUM_CLASSES)
            folder = images
        self.folder = folder
        self.files = list_images(folder)
        if not self.files:
            raise FileNotFoundError(f"{folder} holds no .jpg, .jpeg or .png images to send")
        self.encoding = encoding
        self.jpeg_quality = jpeg_quality
        self._sizes: dict[str, tuple[int, int]] = {}  # file → (width, height), read once

    @property
    def has_truth(self) -> bool:
        return self.labels is not None

    def picture(self, index: int, with_truth: bool) -> Picture:
        name = self.files[index % len(self.files)]
        path = self.folder / name
        data = path.read_bytes()
        native = _FILE_ENCODINGS[path.suffix.lower()]
        encoding = self.encoding or native
        truth = None
        if with_truth and self.labels is not None:
            truth = tuple(self.labels.rle(name, c) for c in range(1, NUM_CLASSES + 1))
        if encoding == native:
            size = self._sizes.get(name)
            if size is None:
                height, width = self._decode(path, data, cv2.IMREAD_GRAYSCALE).shape[:2]
                size = self._sizes[name] = (width, height)
            return Picture(data, encoding, *size, truth, name)
        flags = cv2.IMREAD_COLOR if encoding == "bgr8" else cv2.IMREAD_GRAYSCALE
        image = self._decode(path, data, flags)
        payload = encode_image(image, encoding, self.jpeg_quality)
        return Picture(payload, encoding, image.shape[1], image.shape[0], truth, name)

    def describe(self) -> str:
        labelled = ", with labels" if self.labels is not None else ""
        return f"{len(self.files)} images in {self.folder}{labelled}"

    @staticmethod
    def _decode(path: Path, data: bytes, flags: int) -> UInt8Array:
        # IGNORE_ORIENTATION: the daemon ignores EXIF rotation too.
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flags | cv2.IMREAD_IGNORE_ORIENTATION)
        if image is None:
            raise ValueError(f"{path}: cannot be read as an image")
        return np.asarray(image, np.uint8)


class PooledSource:
    """`source` limited to `size` distinct frames, each prepared once: frame k is picture
    k mod size. Sending then costs no rendering or encoding (memory: size × payload)."""

    def __init__(self, source: FrameSource, size: int) -> None:
        self.source = source
        self.size = size
        self._cache: dict[int, Picture] = {}

    @property
    def has_truth(self) -> bool:
        return self.source.has_truth

    def picture(self, index: int, with_truth: bool) -> Picture:
        key = index % self.size
        cached = self._cache.get(key)
        if cached is None or (with_truth and cached.truth is None):
            cached = self._cache[key] = self.source.picture(key, with_truth)
        return cached

    def describe(self) -> str:
        return f"{self.source.describe()}, pool of {self.size} frames"


def open_source(config: SimulatorConfig) -> FrameSource:
    """The `FrameSource` that `config.source` names."""
    source: FrameSource
    if config.source == SYNTH:
        source = SynthSource(config.seed, config.encoding or "mono8", config.jpeg_quality)
    else:
        folder = Path(config.source)
        if not folder.is_dir():
            raise FileNotFoundError(
                f"source {config.source!r} is neither 'synth' nor a folder of images"
            )
        source = FolderSource(folder, config.encoding, config.jpeg_quality)
    return PooledSource(source, config.pool) if config.pool else source


@dataclass(frozen=True)
class CameraStats:
    """What one simulated camera sent."""

    camera_id: str
    sent: int
    fps: float  # achieved: frames per second between its first and last send
    late: int  # times it fell over one frame period behind and restarted its schedule
    blocked_s: float  # seconds its sends waited on back-pressure (push with a full queue)


@dataclass(frozen=True)
class SimulatorResult:
    """A finished (or in-progress, for `progress`) run."""

    cameras: tuple[CameraStats, ...]
    elapsed_s: float
    endpoints: tuple[str, ...]
    stopped: bool = False  # ended by `stop`, not by frames or seconds
    truth_frames: int = 0  # frames written to the truth CSV

    @property
    def sent(self) -> int:
        return sum(camera.sent for camera in self.cameras)


@dataclass
class _Link:
    """One socket and the cameras (indices) that send on it."""

    socket: zmq.Socket[bytes]
    endpoint: str
    cameras: list[int] = field(default_factory=list)


@dataclass
class _Camera:
    index: int  # position in the camera list: frame k of the run is seq × cameras + index
    camera_id: str
    topic: bytes
    link: _Link
    due: float = 0.0  # monotonic time its next frame is due
    sent: int = 0  # also its next seq
    first: float = 0.0
    last: float = 0.0
    late: int = 0
    blocked: float = 0.0
    pending: Picture | None = None  # its next frame, prepared before it is due


class TruthWriter:
    """Streams Kaggle-layout truth rows (``ImageId,ClassId,EncodedPixels``, every class of
    every frame, empty RLE for a clean class) to ``PATH.partial``; `close` renames it to PATH,
    so a file at PATH is complete for the frames that were sent."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._partial = self.path.with_name(self.path.name + ".partial")
        self._handle = self._partial.open("w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._handle, lineterminator="\n")
        self._writer.writerow(NEW_HEADER)
        self.frames = 0

    def write(self, image_id: str, rles: Sequence[str]) -> None:
        for class_id, rle in enumerate(rles, start=1):
            self._writer.writerow((image_id, class_id, rle))
        self.frames += 1

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.close()
            os.replace(self._partial, self.path)


class Simulator:
    """Simulated cameras sending frames to defectd; `run` blocks until done or stopped.

    `context` (default: a new one, terminated at the end) lets a caller share its ZeroMQ
    context; `clock` is the monotonic clock used for pacing; `progress` is called from the
    sending thread every `status_interval_s` with the run so far. `endpoints` holds the
    resolved endpoints (a ``*`` port replaced by the bound one) once `bound` is set.
    """

    def __init__(
        self,
        config: SimulatorConfig,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        progress: Callable[[SimulatorResult], None] | None = None,
    ) -> None:
        self.config = config
        self.source = open_source(config)  # fails on a bad folder before any socket opens
        if config.truth_out is not None and not self.source.has_truth:
            raise ValueError(
                f"no truth to write for {self.source.describe()}: truth_out needs the synth "
                "source or a Severstal-layout folder (train.csv beside train_images/)"
            )
        self._context = context
        self._clock = clock
        self._progress = progress
        self.endpoints: tuple[str, ...] = ()
        self.bound = threading.Event()

    def run(self, stop: threading.Event | None = None) -> SimulatorResult:
        """Send until every camera sent `frames`, `seconds` passed, or `stop` is set."""
        stop = stop or threading.Event()
        context = self._context or zmq.Context()
        links: list[_Link] = []
        truth: TruthWriter | None = None
        try:
            cameras = self._open(context, links)
            self.endpoints = tuple(link.endpoint for link in links)
            self.bound.set()
            if self.config.wait_subscribers:
                self._wait_for_subscribers(links, cameras, stop)
            if self.config.truth_out is not None:
                truth = TruthWriter(self.config.truth_out)
            return self._send_all(cameras, stop, truth)
        finally:
            if truth is not None:
                truth.close()
            for link in links:
                link.socket.close(linger=self.config.effective_linger_ms)
            if self._context is None:
                context.term()

    def _open(self, context: zmq.Context[zmq.Socket[bytes]], links: list[_Link]) -> list[_Camera]:
        """Open the sockets into `links` (the caller closes them, also when this fails) and
        return the cameras."""
        config = self.config
        secure = _curve_setup(config)
        kind = zmq.PUSH if config.mode == "push" else zmq.PUB
        if config.wait_subscribers:
            kind = zmq.XPUB  # sends like PUB, and shows the subscriptions that arrive
        shared: dict[str, _Link] = {}
        cameras: list[_Camera] = []
        for index, camera_id in enumerate(config.cameras):
            endpoint = camera_endpoint(config.endpoint, index, camera_id)
            link = shared.get(endpoint) if config.bind else None
            if link is None:
                socket = context.socket(kind)
                links.append(_Link(socket, endpoint))  # before anything can fail
                link = links[-1]
                socket.setsockopt(zmq.SNDHWM, config.sndhwm)
                socket.setsockopt(zmq.LINGER, config.effective_linger_ms)
                if kind == zmq.PUSH:
                    socket.setsockopt(zmq.SNDTIMEO, _SEND_POLL_MS)
                if kind == zmq.XPUB:
                    socket.setsockopt(zmq.XPUB_VERBOSE, 1)  # every subscriber's, not only new
                if secure is not None:
                    secure(socket)
                try:
                    if config.bind:
                        socket.bind(endpoint)
                        link.endpoint = socket.getsockopt_string(zmq.LAST_ENDPOINT)
                    else:
                        socket.connect(endpoint)
                except zmq.ZMQError as exc:
                    verb, fix = "connect to", "write the endpoint as tcp://HOST:PORT"
                    if config.bind:
                        verb, fix = "bind", f"use a free port (tcp://HOST:* picks one) or {fix}"
                    raise SimulatorError(
                        f"camera {camera_id} cannot {verb} {endpoint}: {exc}; {fix}"
                    ) from None
                shared[endpoint] = link
            link.cameras.append(index)
            cameras.append(_Camera(index, camera_id, camera_id.encode("ascii"), link))
        for link in links:
            names = ", ".join(config.cameras[i] for i in link.cameras)
            verb = "bound to" if config.bind else "connected to"
            log.info("%s %s %s (cameras %s)", config.mode.upper(), verb, link.endpoint, names)
        return cameras

    def _wait_for_subscribers(
        self, links: list[_Link], cameras: list[_Camera], stop: threading.Event
    ) -> None:
        """Block until every camera's topic has `wait_subscribers` matching subscriptions.

        A SUB socket receives nothing sent before its subscription reached the publisher
        (ZeroMQ's slow joiner); XPUB shows the subscriptions as they arrive, so the first
        frame goes out only once the daemon will get it.
        """
        want = self.config.wait_subscribers
        counts = [0] * len(cameras)
        deadline = self._clock() + self.config.wait_timeout_s
        poller = zmq.Poller()
        for link in links:
            poller.register(link.socket, zmq.POLLIN)
        log.info("waiting for %d subscriber(s) per camera", want)
        while min(counts) < want:
            if stop.is_set():
                return
            remaining = deadline - self._clock()
            if remaining <= 0:
                short = [c.camera_id for c, n in zip(cameras, counts, strict=True) if n < want]
                raise SimulatorError(
                    f"no subscriber for camera(s) {', '.join(short)} after "
                    f"{self.config.wait_timeout_s:g} s on {', '.join(self.endpoints)}: start "
                    "the daemon with these camera ids and endpoints, or lower wait_subscribers"
                )
            for socket, _ in poller.poll(int(min(remaining, 0.1) * 1000) + 1):
                message = socket.recv()
                if not message or message[0] != 1:  # 1: subscribe, 0: unsubscribe
                    continue
                for index, camera in enumerate(cameras):
                    if camera.link.socket is socket and camera.topic.startswith(message[1:]):
                        counts[index] += 1

    def _send_all(
        self, cameras: list[_Camera], stop: threading.Event, truth: TruthWriter | None
    ) -> SimulatorResult:
        config = self.config
        period = 1.0 / config.fps if config.fps else 0.0
        for camera in cameras:  # every camera's first frame ready at the start: no stagger
            camera.pending = self.source.picture(camera.index, truth is not None)
        start = self._clock()
        deadline = start + config.seconds if config.seconds is not None else None
        for camera in cameras:
            camera.due = start
        next_status = start + config.status_interval_s
        stopped = False
        while True:
            active = [c for c in cameras if config.frames is None or c.sent < config.frames]
            if not active:
                break
            # Earliest due first; at fps 0 every camera is always due, so fewest sent first.
            camera = min(active, key=lambda c: (c.due, c.sent, c.index))
            now = self._clock()
            if deadline is not None and max(now, camera.due) >= deadline:
                break
            if now >= next_status:
                # Advance even without a progress callback: a stale next_status would make
                # the wait below return at once and spin a core.
                if self._progress is not None:
                    self._progress(self._result(cameras, now - start, stop.is_set(), truth))
                next_status = now + config.status_interval_s
            if camera.pending is None:
                # Rendered before the frame is due, so it leaves on time, not a render late.
                index = camera.sent * len(config.cameras) + camera.index
                camera.pending = self.source.picture(index, truth is not None)
                continue
            if camera.due > now:
                if stop.wait(min(camera.due, next_status) - now):
                    stopped = True
                    break
                continue
            if stop.is_set():
                stopped = True
                break
            if period and now - camera.due > period:
                camera.late += 1  # a stall: restart this camera's schedule rather than burst
                camera.due = now
            if not self._send(camera, camera.pending, stop, deadline, truth):
                stopped = stop.is_set()
                break
            camera.pending = None
            camera.due += period
        elapsed = self._clock() - start
        return self._result(cameras, elapsed, stopped, truth)

    def _send(
        self,
        camera: _Camera,
        picture: Picture,
        stop: threading.Event,
        deadline: float | None,
        truth: TruthWriter | None,
    ) -> bool:
        """Send `picture` as the camera's next frame; False when `stop` or the deadline came
        while it waited on back-pressure (it was not sent, and its seq stays unused)."""
        config = self.config
        seq = camera.sent
        coil_id = position_m = None
        if config.coil_frames:
            coil_id = _coil_id(config, seq)
            rows = (seq % config.coil_frames) * picture.height
            position_m = round(rows * config.mm_per_px / 1000.0, 6)
        topic = [camera.topic] if config.mode == "pub" else []
        payload = picture.payload
        view = payload if isinstance(payload, bytes) else payload.data  # a view, not a copy
        tried = self._clock()
        blocked = False
        while True:
            try:
                header = FrameHeader(
                    camera.camera_id,
                    seq,
                    time.time_ns(),
                    picture.encoding,
                    picture.width,
                    picture.height,
                    coil_id=coil_id,
                    position_m=position_m,
                )
            except Rejected as exc:  # e.g. a folder image over 16384 px
                raise ValueError(f"{picture.name}: cannot be sent: {exc.detail}") from None
            try:
                # copy=False: ZeroMQ sends from the payload's own memory; pictures are never
                # written to after they are made, so nothing changes under a queued frame.
                camera.link.socket.send_multipart(
                    [*topic, header_to_json(header), view], copy=False
                )
                break
            except zmq.Again:  # PUSH with a full queue (SNDTIMEO passed): the daemon is behind
                blocked = True
                now = self._clock()
                if stop.is_set() or (deadline is not None and now >= deadline):
                    camera.blocked += now - tried
                    return False
        now = self._clock()
        if blocked:
            camera.blocked += now - tried
        if camera.sent == 0:
            camera.first = now
        camera.last = now
        camera.sent += 1
        if truth is not None and picture.truth is not None:
            truth.write(truth_image_id(camera.camera_id, seq), picture.truth)
        return True

    def _result(
        self,
        cameras: list[_Camera],
        elapsed: float,
        stopped: bool,
        truth: TruthWriter | None,
    ) -> SimulatorResult:
        stats = []
        for camera in cameras:
            span = camera.last - camera.first
            fps = (camera.sent - 1) / span if camera.sent > 1 and span > 0 else 0.0
            stats.append(
                CameraStats(camera.camera_id, camera.sent, fps, camera.late, camera.blocked)
            )
        return SimulatorResult(
            tuple(stats),
            elapsed,
            self.endpoints,
            stopped,
            truth.frames if truth is not None else 0,
        )
