"""One GenICam camera → defectd frames on ZeroMQ (`defectd camera --config FILE`).

One gateway process per camera (a systemd template unit per camera, say). It opens the
device through Aravis (`open_device`: id, serial number or address; the first camera found
when none is named), applies the config — pixel format, region, exposure, gain, frame rate,
GigE packet size and resend — and acquires into a small ring of buffers. Each complete buffer
becomes a frame (`pixels.to_mono8`, line-scan lines gathered into ``lines_per_frame``) and is
published with:

- ``seq``: the stream's frame id (a gap means frames lost on the wire; the daemon counts it);
- ``capture_ns``: the camera's timestamp mapped to wall-clock time (`clock.ClockMap`: the
  smallest host − camera offset over the last ``clock_window`` frames, so clock drift is
  followed and transfer delays are not);
- ``coil_id`` / ``position_m`` from the config, or from the plant's side channel
  (`side_channel.SideChannel`: a PLC bridge publishing coil and encoder readings).

Incomplete or aborted buffers are counted, never published. A camera that stops delivering
for ``lost_after_s`` (power cycle, cable) is closed and opened again with an exponential
back-off; the frame ids start again, which the daemon takes as a sequence reset, not a loss.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import numpy.typing as npt
import zmq

from defectd.daemon.clients.camera.clock import DEFAULT_WINDOW, ClockMap
from defectd.daemon.clients.camera.pixels import BITS, LineAssembler, Window, to_mono8
from defectd.daemon.clients.camera.side_channel import SideChannel, StripState
from defectd.daemon.config.endpoints import parse_endpoint
from defectd.daemon.protocol import FrameHeader, encode_frame
from defectd.engines.errors import InvalidInput, InvalidSetting, UserError

log = logging.getLogger(__name__)
BUFFERS = 8


class CameraError(UserError):
    """The camera cannot be opened or set up as configured; the message names the fix."""


@dataclass(frozen=True)
class CameraConfig:
    """The gateway's YAML (docs/cameras.md)."""

    id: str  # the defectd camera id (header and topic)
    endpoint: str  # where frames go: PUB binds it, PUSH connects to the daemon's PULL
    mode: str = "pub"  # pub | push
    device: str | None = None  # Aravis device id, serial number or address; None: the first
    pixel_format: str = "Mono8"
    width: int | None = None  # None: the camera's current region
    height: int | None = None
    offset_x: int = 0
    offset_y: int = 0
    exposure_us: float | None = None
    gain: float | None = None
    frame_rate: float | None = None  # None: the camera's (or its trigger's)
    packet_size: int | None = None  # GigE Vision only; None: the camera's
    packet_resend: bool = True
    window: tuple[int, int] | None = None  # Mono10/12/16 range mapped to 8 bit
    lines_per_frame: int | None = None  # line-scan: lines gathered into one frame
    coil_id: str | None = None
    position_m: float | None = None
    side_channel: str | None = None  # ZeroMQ PUB endpoint of coil / encoder readings
    clock_window: int = DEFAULT_WINDOW  # frames the clock offset's minimum is taken over
    lost_after_s: float = 3.0
    reconnect_max_s: float = 10.0

    def __post_init__(self) -> None:
        if self.mode not in ("pub", "push"):
            raise InvalidSetting(f"mode {self.mode!r}: use pub or push")
        if self.pixel_format not in BITS:
            raise InvalidSetting(
                f"pixel_format {self.pixel_format!r}: the gateway takes {', '.join(BITS)}"
            )
        if self.window is not None:
            Window(*self.window)
        if self.lost_after_s <= 0 or self.reconnect_max_s <= 0:
            raise InvalidSetting("lost_after_s and reconnect_max_s must be positive")
        if self.clock_window < 1:
            raise InvalidSetting(f"clock_window must be at least 1 frame, got {self.clock_window}")
        if self.side_channel is not None:
            try:
                parse_endpoint(self.side_channel)
            except ValueError as exc:
                raise InvalidSetting(f"side_channel: {exc}") from None

    @classmethod
    def from_mapping(cls, values: dict[str, Any], where: str = "camera config") -> CameraConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidSetting(
                f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        values = dict(values)
        if values.get("window") is not None:
            values["window"] = tuple(values["window"])
        try:
            return cls(**values)
        except TypeError as exc:
            raise InvalidSetting(f"{where}: {exc}") from None


@dataclass
class GatewayCounts:
    """What the gateway saw; exported as Prometheus counters by the command."""

    frames: int = 0  # published
    incomplete: int = 0  # buffers not complete (missing packets, timeouts, aborted)
    resent_packets: int = 0
    missing_packets: int = 0
    reconnects: int = 0
    side_updates: int = 0  # side-channel messages applied
    side_rejected: int = 0  # side-channel messages skipped (not valid JSON readings)
    statuses: dict[str, int] = field(default_factory=dict)  # incomplete buffers by status


def open_device(aravis: Any, config: CameraConfig) -> Any:
    """The Aravis camera of `config.device`, set up as configured; CameraError naming the fix."""
    try:
        aravis.update_device_list()  # a camera that came back may have a new address
        camera = aravis.Camera.new(config.device)
    except Exception as exc:  # GLib.Error: the device is not there
        raise CameraError(
            f"camera {config.device or '(first found)'} not found ({_message(exc)}): check "
            "the name with `defectd camera --list` (or arv-tool-0.8), the cable and the "
            "network (docs/cameras.md)"
        ) from None
    try:
        available = list(camera.dup_available_pixel_formats_as_strings() or [])
    except Exception:
        available = []
    if available and config.pixel_format not in available:
        raise CameraError(
            f"camera {config.device or camera.get_device_id()} has no pixel format "
            f"{config.pixel_format}; it offers {', '.join(available)}: set pixel_format to one "
            f"of {', '.join(p for p in available if p in BITS) or 'Mono8…Mono16 (none offered)'}"
        )
    try:
        camera.set_pixel_format_from_string(config.pixel_format)
        if config.width is not None or config.height is not None:
            _, _, width, height = _region(camera)
            camera.set_region(
                config.offset_x,
                config.offset_y,
                config.width or width,
                config.height or height,
            )
        if config.exposure_us is not None:
            camera.set_exposure_time(config.exposure_us)
        if config.gain is not None:
            camera.set_gain(config.gain)
        if config.frame_rate is not None:
            camera.set_frame_rate(config.frame_rate)
        if config.packet_size is not None and camera.is_gv_device():
            camera.gv_set_packet_size(config.packet_size)
    except Exception as exc:
        raise CameraError(f"camera setup failed: {_message(exc)}") from None
    return camera


def _region(camera: Any) -> tuple[int, int, int, int]:
    region = camera.get_region()
    return int(region.x), int(region.y), int(region.width), int(region.height)


def _message(exc: BaseException) -> str:
    return str(getattr(exc, "message", None) or exc)


class Gateway:
    """Acquire from one camera and publish its frames (module docstring)."""

    def __init__(
        self,
        config: CameraConfig,
        aravis: Any,
        context: zmq.Context[zmq.Socket[bytes]] | None = None,
        on_frame: Callable[[FrameHeader, npt.NDArray[np.uint8]], None] | None = None,
    ) -> None:
        self.config = config
        self.aravis = aravis
        self.counts = GatewayCounts()
        self._context = context or zmq.Context.instance()
        self._on_frame = on_frame
        self._socket: zmq.Socket[bytes] | None = None
        self._side: SideChannel | None = None
        self._strip = StripState(config.coil_id, config.position_m)
        self._assembled = 0  # line-scan frames published

    def run(self, stop: threading.Event, frames: int | None = None) -> GatewayCounts:
        """Publish until `stop` is set or `frames` are sent; reconnects a lost camera."""
        self._socket = self._open_socket()
        if self.config.side_channel is not None:
            self._side = SideChannel(self._context, self.config.side_channel, self._strip)
        backoff = 0.5
        try:
            while not stop.is_set() and (frames is None or self.counts.frames < frames):
                try:
                    camera = open_device(self.aravis, self.config)
                except CameraError:
                    if self.counts.reconnects == 0 and self.counts.frames == 0:
                        raise  # never seen: a configuration mistake, say so at once
                    log.warning(
                        "camera %s not back yet; retrying in %.1f s", self.config.id, backoff
                    )
                    stop.wait(backoff)
                    backoff = min(backoff * 2, self.config.reconnect_max_s)
                    continue
                backoff = 0.5
                self._acquire(camera, stop, frames)
                if not stop.is_set() and (frames is None or self.counts.frames < frames):
                    self.counts.reconnects += 1
                    log.warning("camera %s lost; reconnecting", self.config.id)
        finally:
            self._socket.close(linger=1000)
            if self._side is not None:
                self._side.close()
        return self.counts

    def _open_socket(self) -> zmq.Socket[bytes]:
        kind = zmq.PUB if self.config.mode == "pub" else zmq.PUSH
        socket = self._context.socket(kind)
        if self.config.mode == "pub":
            socket.bind(self.config.endpoint)
        else:
            socket.connect(self.config.endpoint)
        return socket

    def _acquire(self, camera: Any, stop: threading.Event, frames: int | None) -> None:
        """One session with the camera: until stop, enough frames, or the camera goes quiet."""
        aravis = self.aravis
        stream = camera.create_stream(None, None)
        if stream is None:
            raise CameraError("the camera gave no stream: is another program holding it?")
        if hasattr(stream, "set_property") and camera.is_gv_device():
            mode = (
                aravis.GvStreamPacketResend.ALWAYS
                if self.config.packet_resend
                else (aravis.GvStreamPacketResend.NEVER)
            )
            stream.set_property("packet-resend", mode)
        payload = camera.get_payload()
        for _ in range(BUFFERS):
            stream.push_buffer(aravis.Buffer.new_allocate(payload))
        assembler = (
            LineAssembler(self.config.lines_per_frame) if self.config.lines_per_frame else None
        )
        clock = ClockMap(self.config.clock_window)  # a reopened camera's clock starts again
        quiet_since = time.monotonic()
        camera.start_acquisition()
        try:
            while not stop.is_set() and (frames is None or self.counts.frames < frames):
                buffer = stream.timeout_pop_buffer(200_000)
                if buffer is None:
                    if time.monotonic() - quiet_since > self.config.lost_after_s:
                        return  # lost: the caller reconnects
                    continue
                quiet_since = time.monotonic()
                try:
                    status = buffer.get_status()
                    if status != aravis.BufferStatus.SUCCESS:
                        name = getattr(status, "value_nick", str(status))
                        self.counts.incomplete += 1
                        self.counts.statuses[name] = self.counts.statuses.get(name, 0) + 1
                        continue
                    device_ns, host_ns = buffer.get_timestamp(), buffer.get_system_timestamp()
                    image = to_mono8(
                        buffer.get_data(),
                        self.config.pixel_format,
                        buffer.get_image_width(),
                        buffer.get_image_height(),
                        Window(*self.config.window) if self.config.window else None,
                    )
                    seq, capture_ns = buffer.get_frame_id(), clock.capture_ns(device_ns, host_ns)
                finally:
                    stream.push_buffer(buffer)
                if assembler is None:
                    self._publish(seq, capture_ns, image)
                    continue
                for frame in assembler.add(image):  # a line-scan frame: its own counter
                    self._publish(self._assembled, capture_ns, frame)
                    self._assembled += 1
        finally:
            with contextlib.suppress(Exception):  # the device may be gone: nothing to stop
                camera.stop_acquisition()
            self._statistics(stream)

    def _statistics(self, stream: Any) -> None:
        try:
            resent, missing = stream.get_statistics()[:2]
        except Exception:
            return
        self.counts.resent_packets += int(resent)
        self.counts.missing_packets += int(missing)

    def _publish(self, seq: int, capture_ns: int, image: npt.NDArray[np.uint8]) -> None:
        height, width = image.shape
        if self._side is not None:
            self._strip = self._side.poll()
            self.counts.side_updates = self._side.updates
            self.counts.side_rejected = self._side.rejected
        try:
            header = FrameHeader(
                camera_id=self.config.id,
                seq=seq,
                capture_ns=capture_ns,
                encoding="mono8",
                width=width,
                height=height,
                coil_id=self._strip.coil_id,
                position_m=self._strip.position_at(capture_ns),
            )
        except ValueError as exc:
            raise InvalidInput(f"camera {self.config.id}: {exc}") from None
        assert self._socket is not None
        self._socket.send_multipart(
            encode_frame(header, image.data, with_topic=self.config.mode == "pub")
        )
        self.counts.frames += 1
        if self._on_frame is not None:
            self._on_frame(header, image)
