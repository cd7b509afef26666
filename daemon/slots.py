"""Shared-memory frame slots: pixels cross process boundaries here, queues carry `SlotRef`s.

One POSIX shared-memory segment (Linux ``/dev/shm``) holds a small header, a slot table and
the frames: one or more `SlotGroup`s, each ``count`` frames of its ``height×width`` uint8 for
its cameras (a daemon whose cameras send frames of several sizes has a group per size, so
every slot is its camera's frame size). The supervisor creates it (`SlotPool.create`);
receiver, inference and post-processing processes attach by name (`SlotPool.attach`). A
camera's frame only ever takes a slot of its own group: `drop_oldest` drops the oldest frame
of that group.

Slot life cycle (`SlotState`)::

    FREE -> FILLING -> READY -> BATCHED -> INFERRED -> DONE -> FREE
            receiver   queued    engine     post-proc   publish
                       (droppable)

Every slot's table row records its state, owner pid, a generation number and the frame's
metadata. A `SlotRef` (slot, generation, metadata) is what queues carry; each operation checks
the generation, so a reference to a frame that was dropped or reclaimed meanwhile is refused
(``False``/left out) instead of touching the slot's new frame. That is what lets the caller
account every frame exactly once.

The table is guarded by ``flock`` on the segment's file: the kernel drops the lock when its
holder dies, so a SIGKILLed process can never leave the pool locked. Children map the segment
themselves instead of through `multiprocessing.shared_memory.SharedMemory`, so nothing
registers it with a resource tracker but the creator (see docs/daemon.md).

Longer than the project's usual 400 lines on purpose: the segment layout, the flock and every
state transition must be read together to see that no transition can lose or double a frame;
split across files, the invariants would be too.
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import fcntl
import logging
import mmap
import os
import secrets
import threading
import time
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing import shared_memory
from pathlib import Path
from types import TracebackType

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

SHM_DIR = Path("/dev/shm")
POLICIES = ("drop_oldest", "block")
CAMERA_BYTES = 32  # camera id room in a slot's metadata (UTF-8)
NOTE_BYTES = 512  # per-slot room for what the pipeline carries besides FrameMeta (see `note`)

_MAGIC = b"DFSLOTS2"
_HEADER_BYTES = 64
_HEADER = np.dtype(
    [
        ("magic", "S8"),
        ("count", "<u4"),
        ("groups", "<u4"),
        ("frame_bytes", "<u8"),
        ("next_ticket", "<i8"),
    ]
)
_SLOT = np.dtype(
    [
        ("state", "u1"),
        ("owner", "<i4"),
        ("gen", "<i8"),
        ("ticket", "<i8"),  # commit order: the smallest READY ticket is the oldest frame
        ("seq", "<u8"),  # a camera seq is a uint64 (protocol): 2**64 - 1 is valid
        ("received", "<f8"),
        ("camera", f"S{CAMERA_BYTES}"),
        ("note", f"S{NOTE_BYTES}"),
    ],
    align=True,
)
_MAX_SLEEP_S = 0.005  # longest sleep between tries while `acquire` waits for a free slot


class SlotState(enum.IntEnum):
    """Where a slot is in its life cycle."""

    FREE = 0
    FILLING = 1  # a receiver writes the pixels
    READY = 2  # queued for inference; the only state `drop_oldest` takes from
    BATCHED = 3  # claimed into a batch by the inference process
    INFERRED = 4  # engine output handed to post-processing
    DONE = 5  # post-processed; the publisher may still read the pixels


# to-state -> the state a slot must be in for `advance`
_PREVIOUS = {
    SlotState.BATCHED: SlotState.READY,
    SlotState.INFERRED: SlotState.BATCHED,
    SlotState.DONE: SlotState.INFERRED,
}


class SlotPoolError(RuntimeError):
    """The pool cannot be created, attached or used as asked."""


@dataclass(frozen=True)
class FrameMeta:
    """What the pipeline knows about a frame besides its pixels."""

    camera: str
    seq: int  # the camera's sequence number
    received: float  # receive time in seconds (time.monotonic in the daemon)


@dataclass(frozen=True)
class SlotRef:
    """A frame in a slot: what queues carry between processes (small, picklable)."""

    slot: int
    gen: int  # the slot's generation when this frame was put in it
    meta: FrameMeta


@dataclass(frozen=True)
class Acquired:
    """Result of `SlotPool.acquire`.

    ``ref`` is the slot to fill, or None when no slot could be had (count the incoming frame as
    dropped). ``dropped`` is the frame that `drop_oldest` took the slot from: count it as
    dropped{reason="queue_full"}; it may belong to any camera of the same slot group.
    """

    ref: SlotRef | None
    dropped: FrameMeta | None = None


@dataclass(frozen=True)
class SlotGroup:
    """``count`` slots of ``height×width`` for the frames of `cameras` (empty: any camera)."""

    count: int
    height: int
    width: int
    cameras: tuple[str, ...] = ()

    @property
    def frame_bytes(self) -> int:
        return self.height * self.width

    def describe(self) -> str:
        return f"{self.count} slots of {self.height}×{self.width}"


@dataclass(frozen=True)
class SlotPoolSpec:
    """Everything a child needs to attach (plain values: pickles through queues too)."""

    name: str
    groups: tuple[SlotGroup, ...]
    policy: str = "drop_oldest"

    @property
    def path(self) -> Path:
        return SHM_DIR / self.name

    @property
    def count(self) -> int:
        """Slots in all groups."""
        return sum(group.count for group in self.groups)

    @property
    def frame_bytes(self) -> int:
        """Bytes of all slots' pixels."""
        return sum(group.count * group.frame_bytes for group in self.groups)

    def starts(self) -> list[int]:
        """The first slot index of each group (slots are numbered across groups in order)."""
        starts, first = [], 0
        for group in self.groups:
            starts.append(first)
            first += group.count
        return starts

    def group_of(self, camera: str) -> int:
        """Index of the group whose slots hold `camera`'s frames (ValueError: none does)."""
        for index, group in enumerate(self.groups):
            if not group.cameras or camera in group.cameras:
                return index
        raise ValueError(f"camera {camera!r} has no slot group in pool {self.name}")

    def group_of_slot(self, slot: int) -> int:
        """Index of the group `slot` belongs to."""
        if not 0 <= slot < self.count:
            raise IndexError(f"slot {slot} out of range 0..{self.count - 1}")
        index = 0
        for index, start in enumerate(self.starts()):
            if slot < start + self.groups[index].count:
                break
        return index

    def describe(self) -> str:
        return ", ".join(group.describe() for group in self.groups)


@dataclass(frozen=True)
class _Layout:
    table: int
    frames: int
    size: int

    @classmethod
    def of(cls, spec: SlotPoolSpec) -> _Layout:
        table = _HEADER_BYTES
        frames = -(-(table + spec.count * _SLOT.itemsize) // mmap.PAGESIZE) * mmap.PAGESIZE
        return cls(table=table, frames=frames, size=frames + spec.frame_bytes)


class SlotPool:
    """Fixed shared-memory frame slots with a cross-process free list.

    Make one with `create` (the supervisor: the segment is unlinked by `unlink`, on leaving the
    ``with`` block, or at exit) or `attach` (children: `close` only unmaps). Start children
    with ``spawn``: a forked child would share the parent's lock file description, so its lock.
    """

    def __init__(
        self,
        spec: SlotPoolSpec,
        fd: int,
        mapping: mmap.mmap,
        segment: shared_memory.SharedMemory | None,
    ) -> None:
        """Internal: use `SlotPool.create` or `SlotPool.attach`."""
        layout = _Layout.of(spec)
        self._spec = spec
        self._fd = fd
        self._map = mapping
        self._segment = segment  # only in the creator: unlink() and the resource tracker
        self._pid = os.getpid()
        self._thread_lock = threading.Lock()  # flock does not exclude threads sharing one fd
        self._closed = False
        self._unlinked = False
        # np.frombuffer keeps a buffer export on the mapping, so mmap.close() refuses (instead
        # of unmapping under a live view and crashing) while any view is alive.
        self._header: npt.NDArray[np.void] = np.frombuffer(mapping, _HEADER, count=1)
        self._table: npt.NDArray[np.void] = np.frombuffer(
            mapping, _SLOT, count=spec.count, offset=layout.table
        )
        self._groups: list[npt.NDArray[np.uint8]] = []  # per group: count×height×width views
        offset = layout.frames
        for group in spec.groups:
            frames = np.frombuffer(
                mapping, np.uint8, count=group.count * group.frame_bytes, offset=offset
            )
            self._groups.append(frames.reshape(group.count, group.height, group.width))
            offset += group.count * group.frame_bytes
        self._starts = spec.starts()

    # -- making and attaching ------------------------------------------------------------

    @classmethod
    def create(
        cls,
        name_prefix: str,
        count: int,
        height: int,
        width: int,
        policy: str = "drop_oldest",
    ) -> SlotPool:
        """A new segment of `count` slots of one size for any camera (see `create_groups`)."""
        return cls.create_groups(name_prefix, (SlotGroup(count, height, width),), policy)

    @classmethod
    def create_groups(
        cls, name_prefix: str, groups: Iterable[SlotGroup], policy: str = "drop_oldest"
    ) -> SlotPool:
        """A new segment named ``{name_prefix}-{pid}-{random}`` holding `groups`, every slot
        FREE."""
        groups = tuple(groups)
        if not groups:
            raise ValueError("slot pool needs at least one slot group")
        for group in groups:
            if group.count < 1 or group.height < 1 or group.width < 1:
                raise ValueError(
                    f"slot pool needs count, height and width ≥ 1, got {group.count}, "
                    f"{group.height}×{group.width}"
                )
        if policy not in POLICIES:
            raise ValueError(f"unknown backpressure policy {policy!r}; choose from {POLICIES}")
        if not SHM_DIR.is_dir():
            raise SlotPoolError(f"slot pool needs POSIX shared memory under {SHM_DIR} (Linux)")
        spec = SlotPoolSpec(f"{name_prefix}-{os.getpid()}-{secrets.token_hex(4)}", groups, policy)
        layout = _Layout.of(spec)
        # SharedMemory creates the segment and registers it with the resource tracker, which
        # unlinks it should this process die without running atexit. We map it ourselves.
        segment = shared_memory.SharedMemory(spec.name, create=True, size=layout.size)
        segment.close()
        try:
            fd = os.open(spec.path, os.O_RDWR)
            try:
                mapping = mmap.mmap(fd, layout.size)
            except BaseException:
                os.close(fd)
                raise
        except BaseException:
            segment.unlink()
            raise
        pool = cls(spec, fd, mapping, segment)
        header = pool._header[0]
        header["magic"] = _MAGIC
        header["count"], header["groups"] = spec.count, len(groups)
        header["frame_bytes"] = spec.frame_bytes
        header["next_ticket"] = 1
        atexit.register(pool._at_exit)
        log.debug("slot pool %s: %s", spec.name, spec.describe())
        return pool

    @classmethod
    def attach(cls, spec: SlotPoolSpec) -> SlotPool:
        """Map an existing pool (in a child process); never unlinks it."""
        try:
            fd = os.open(spec.path, os.O_RDWR)
        except FileNotFoundError:
            raise SlotPoolError(
                f"slot pool segment {spec.path} does not exist: the process that created it "
                "has exited or unlinked it"
            ) from None
        try:
            layout = _Layout.of(spec)
            size = os.fstat(fd).st_size
            if size < layout.size:
                raise SlotPoolError(
                    f"slot pool segment {spec.path} is {size} bytes, spec {spec} needs "
                    f"{layout.size}: attach with the spec the supervisor created it with"
                )
            mapping = mmap.mmap(fd, layout.size)
        except BaseException:
            os.close(fd)
            raise
        pool = cls(spec, fd, mapping, segment=None)
        magic, count, groups, frame_bytes = pool._header[
            ["magic", "count", "groups", "frame_bytes"]
        ].item()
        wanted = (_MAGIC, spec.count, len(spec.groups), spec.frame_bytes)
        if (magic, count, groups, frame_bytes) != wanted:
            pool.close()
            raise SlotPoolError(
                f"slot pool segment {spec.path} holds {count} slots in {groups} group(s), "
                f"{frame_bytes} bytes of pixels (magic {magic!r}); spec asks for "
                f"{spec.describe()}: attach with the spec the supervisor created it with"
            )
        return pool

    # -- properties ------------------------------------------------------------------------

    @property
    def spec(self) -> SlotPoolSpec:
        return self._spec

    @property
    def name(self) -> str:
        return self._spec.name

    @property
    def closed(self) -> bool:
        return self._closed

    # -- slot operations -----------------------------------------------------------------

    def frame(self, slot: int) -> npt.NDArray[np.uint8]:
        """The slot's height×width pixels (its group's size) as a writable view (no copy)."""
        self._check_open()
        group = self._spec.group_of_slot(slot)
        view: npt.NDArray[np.uint8] = self._groups[group][slot - self._starts[group]]
        return view

    def acquire(
        self,
        meta: FrameMeta,
        *,
        block: bool = True,
        timeout: float | None = None,
        group: int | None = None,
    ) -> Acquired:
        """A FILLING slot for a new frame, owned by this process.

        Only slots of the camera's group are looked at. With no FREE one, policy
        ``drop_oldest`` takes the slot of the group's oldest READY frame (returned in
        `Acquired.dropped`). Where nothing can be taken (policy ``block``, or no READY frame),
        wait up to ``timeout`` seconds (None: forever) if ``block``, else return
        ``Acquired(None)`` at once. Receivers of live lines pass a short timeout or
        ``block=False``: with every slot in the engine or post-processing, waiting longer
        only moves the drop to the camera's side. `group` names the slot group (receivers
        pass the one of the camera's frame size); None: the group listing the camera.
        """
        camera = meta.camera.encode()
        if len(camera) > CAMERA_BYTES:
            raise ValueError(
                f"camera id {meta.camera!r} is {len(camera)} bytes in UTF-8; "
                f"slot metadata holds at most {CAMERA_BYTES}"
            )
        if group is None:
            group = self._spec.group_of(meta.camera)
        first = self._starts[group]
        last = first + self._spec.groups[group].count
        deadline = None if timeout is None else time.monotonic() + timeout
        sleep = 0.0002
        while True:
            with self._locked():
                states = self._table["state"][first:last]
                free = np.flatnonzero(states == SlotState.FREE)
                if free.size:
                    return Acquired(self._occupy(first + int(free[0]), meta, camera))
                if self._spec.policy == "drop_oldest":
                    ready = np.flatnonzero(states == SlotState.READY)
                    if ready.size:
                        tickets = self._table["ticket"][first:last][ready]
                        slot = first + int(ready[np.argmin(tickets)])
                        dropped = self._meta(slot)
                        return Acquired(self._occupy(slot, meta, camera), dropped)
            left = None if deadline is None else deadline - time.monotonic()
            if not block or (left is not None and left <= 0):
                return Acquired(None)
            # Sleep-polling, not a cross-process condition variable: there is no wake-up state
            # a dying process could corrupt, and a full pool means the pipeline is behind anyway.
            time.sleep(sleep if left is None else min(sleep, left))
            sleep = min(sleep * 2, _MAX_SLEEP_S)

    def commit(self, ref: SlotRef) -> bool:
        """FILLING -> READY once the pixels are written; False if the slot no longer holds it."""
        with self._locked():
            if not self._holds(ref, SlotState.FILLING):
                return False
            header = self._header[0]
            ticket = int(header["next_ticket"])
            header["next_ticket"] = ticket + 1
            row = self._table[ref.slot]
            row["ticket"] = ticket
            row["state"] = SlotState.READY
            return True

    def claim(self, refs: Iterable[SlotRef]) -> list[SlotRef]:
        """READY -> BATCHED for a batch, owned by this process; refs no longer held are left out.

        A ref is left out when `drop_oldest` took its slot after it was queued; that frame was
        already counted as dropped by the receiver that took it.
        """
        pid = os.getpid()
        claimed = []
        with self._locked():
            for ref in refs:  # check and move one by one: a ref queued twice is claimed once
                if self._holds(ref, SlotState.READY):
                    row = self._table[ref.slot]
                    row["owner"] = pid
                    row["state"] = SlotState.BATCHED
                    claimed.append(ref)
        return claimed

    def advance(self, ref: SlotRef, state: SlotState) -> bool:
        """Move a held frame on (BATCHED, INFERRED or DONE) and take ownership of it.

        The process that takes a frame off a queue calls this, so `reclaim` finds the frame
        under the right owner. False if the slot no longer holds the frame.
        """
        if state not in _PREVIOUS:
            raise ValueError(
                f"advance moves to BATCHED, INFERRED or DONE, not {state.name}; use acquire, "
                "commit or release for the others"
            )
        with self._locked():
            if not self._holds(ref, _PREVIOUS[state]):
                return False
            row = self._table[ref.slot]
            row["owner"] = os.getpid()
            row["state"] = state
            return True

    def release(self, ref: SlotRef) -> bool:
        """Free the slot (from any state); False if it no longer holds the frame.

        True exactly once per acquired frame, so the caller counts the frame (processed or
        dropped) only on True.
        """
        with self._locked():
            if not self._holds(ref, None):
                return False
            row = self._table[ref.slot]
            row["state"] = SlotState.FREE
            row["owner"] = 0
            return True

    def reclaim(
        self,
        owner_pid: int,
        keep_ready: bool = False,
        *,
        state: SlotState | None = None,
        cameras: Collection[str] | None = None,
    ) -> list[FrameMeta]:
        """Free every slot owned by ``owner_pid`` (a dead process); their frames, oldest first.

        The supervisor calls it after a child has exited, before starting its replacement, and
        counts the frames as dropped{reason="worker_crash"}. Refs to them still in queues are
        refused later, so nothing is counted twice. `keep_ready`: leave READY frames alone
        (their pixels are complete; right when consumers find them in the table, not through
        refs the dead process sent). `state` and `cameras` narrow it to frames in that state
        of those cameras: frames a live owner sent to a consumer that died.
        """
        if owner_pid <= 0:
            raise ValueError(f"reclaim needs the dead process's pid, got {owner_pid}")
        with self._locked():
            table = self._table
            mine = table["owner"] == owner_pid
            taken = table["state"] != SlotState.FREE
            if keep_ready:
                taken &= table["state"] != SlotState.READY
            if state is not None:
                taken &= table["state"] == state
            if cameras is not None:
                taken &= np.isin(table["camera"], [c.encode() for c in cameras])
            held = np.flatnonzero(mine & taken)
            held = held[np.argsort(table["received"][held], kind="stable")]
            frames = [self._meta(int(slot)) for slot in held]
            table["state"][held] = SlotState.FREE
            # FREE rows too: a process killed mid-update leaves those
            table["owner"][mine & (table["state"] == SlotState.FREE)] = 0
        if frames:
            log.warning(
                "slot pool %s: reclaimed %d slots of dead process %d",
                self.name,
                len(frames),
                owner_pid,
            )
        return frames

    def ready(self) -> list[tuple[int, SlotRef]]:
        """Every READY frame with its commit ticket, oldest first.

        For a consumer that batches straight from the table (the inference process): a frame
        waiting here needs no queue, so it survives a restart of that consumer.
        """
        with self._locked():
            table = self._table
            slots = np.flatnonzero(table["state"] == SlotState.READY)
            slots = slots[np.argsort(table["ticket"][slots], kind="stable")]
            return [
                (int(table["ticket"][slot]), SlotRef(int(slot), int(table["gen"][slot]), meta))
                for slot in slots
                for meta in (self._meta(int(slot)),)
            ]

    def write_note(self, ref: SlotRef, note: bytes) -> bool:
        """Attach up to `NOTE_BYTES` of opaque data (no trailing NULs) to a FILLING frame.

        The pipeline keeps the frame header's extras here (capture time, coil, ...), so they
        travel with the slot rather than through a queue. False if the slot no longer holds it.
        """
        if len(note) > NOTE_BYTES:
            raise ValueError(f"slot note is {len(note)} bytes, slots hold {NOTE_BYTES}")
        with self._locked():
            if not self._holds(ref, SlotState.FILLING):
                return False
            self._table[ref.slot]["note"] = note
            return True

    def note(self, ref: SlotRef) -> bytes | None:
        """The frame's note (b"" when none was written); None if the slot no longer holds it."""
        with self._locked():
            if not self._holds(ref, None):
                return None
            return bytes(self._table[ref.slot]["note"])

    def state(self, slot: int) -> SlotState:
        """The slot's current state (for logs and tests)."""
        with self._locked():
            return SlotState(int(self._table["state"][slot]))

    def usage(self) -> dict[SlotState, int]:
        """Slots per state, for the slot-usage gauges."""
        with self._locked():
            counts = np.bincount(self._table["state"], minlength=len(SlotState))
        return {state: int(counts[state]) for state in SlotState}

    def in_use(self) -> int:
        """Slots not FREE."""
        with self._locked():
            return int(np.count_nonzero(self._table["state"] != SlotState.FREE))

    # -- closing -------------------------------------------------------------------------

    def close(self) -> None:
        """Unmap the pool in this process; safe to call twice. The creator also calls `unlink`."""
        if self._closed:
            return
        self._closed = True
        del self._header, self._table, self._groups
        try:
            self._map.close()
        except BufferError:
            # Someone still holds a frame view; the mapping goes when the last view does.
            log.warning("slot pool %s: frame views still in use at close", self.name)
        os.close(self._fd)

    def unlink(self) -> None:
        """Remove the segment's name (creator only; safe to call twice).

        Mappings stay valid until each process closes them; new `attach` calls fail.
        """
        if self._segment is None:
            raise SlotPoolError(f"slot pool {self.name}: only the creating process unlinks it")
        if self._unlinked:
            return
        self._unlinked = True
        atexit.unregister(self._at_exit)
        try:
            self._segment.unlink()
        except FileNotFoundError:
            log.warning("slot pool %s was already removed from %s", self.name, SHM_DIR)

    def __enter__(self) -> SlotPool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
        if self._segment is not None:
            self.unlink()

    def __repr__(self) -> str:
        spec = self._spec
        return (
            f"SlotPool({spec.name!r}, {spec.describe()}, "
            f"{spec.policy}{', closed' if self._closed else ''})"
        )

    # -- internals -----------------------------------------------------------------------

    def _at_exit(self) -> None:
        if os.getpid() != self._pid:  # a forked child inherited the handler: not its segment
            return
        self.close()
        self.unlink()

    def _check_open(self) -> None:
        if self._closed:
            raise SlotPoolError(f"slot pool {self.name} is closed")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._check_open()
        if os.getpid() != self._pid:
            raise SlotPoolError(
                f"slot pool {self.name} was opened in process {self._pid} and used in "
                f"{os.getpid()} after fork: use spawn children and SlotPool.attach(spec)"
            )
        with self._thread_lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _holds(self, ref: SlotRef, state: SlotState | None) -> bool:
        """Whether the slot still holds ref's frame (in ``state``, or any held state)."""
        if not 0 <= ref.slot < self._spec.count:
            raise IndexError(f"slot {ref.slot} out of range 0..{self._spec.count - 1}")
        row = self._table[ref.slot]
        current = int(row["state"])
        if int(row["gen"]) != ref.gen or current == SlotState.FREE:
            return False
        return state is None or current == state

    def _occupy(self, slot: int, meta: FrameMeta, camera: bytes) -> SlotRef:
        # Store order matters only for a process SIGKILLed inside this (lock-held) update:
        # until "state" flips, a FREE row stays free and a READY row keeps its old frame's
        # metadata, which reclaim(this pid) then reports. The incoming frame may be lost;
        # FrameAccount.overdue finds it.
        row = self._table[slot]
        was_free = int(row["state"]) == SlotState.FREE
        row["owner"] = os.getpid()
        if was_free:
            self._write_meta(row, meta, camera)
            row["note"] = b""
        gen = int(row["gen"]) + 1
        row["gen"] = gen
        row["ticket"] = 0
        row["state"] = SlotState.FILLING
        if not was_free:
            self._write_meta(row, meta, camera)
            row["note"] = b""
        return SlotRef(slot, gen, meta)

    @staticmethod
    def _write_meta(row: np.void, meta: FrameMeta, camera: bytes) -> None:
        row["camera"], row["seq"], row["received"] = camera, meta.seq, meta.received

    def _meta(self, slot: int) -> FrameMeta:
        row = self._table[slot]
        return FrameMeta(
            camera=bytes(row["camera"]).decode(),
            seq=int(row["seq"]),
            received=float(row["received"]),
        )
