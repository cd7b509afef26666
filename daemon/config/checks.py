"""Checks that span keys: camera ids and frame sizes, limits that depend on other keys,
addresses bound twice, and the CURVE key files ``security.curve`` needs.

`check_across_keys` runs on the sections that parsed (as the reader holds them: cameras with
their list index) and adds what it finds to the reader's `Problems`. `config_warnings` is
for a config that is valid but unwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from defectd.daemon.config.endpoints import (
    Endpoint,
    is_loopback,
    opcua_host,
    parse_endpoint,
    parse_http_bind,
)
from defectd.daemon.config.errors import Problems
from defectd.daemon.config.schema import (
    CameraSettings,
    DaemonConfig,
    MetricsSettings,
    PublishSettings,
    SecuritySettings,
)
from defectd.daemon.protocol import RAW_CHANNELS


def check_across_keys(parts: Mapping[str, Any], complete: bool, problems: Problems) -> None:
    """Add the problems that span keys in `parts` (section name → parsed section or None;
    ``cameras``: (index, camera) pairs). `complete`: every listed camera parsed."""
    _check_cameras(parts.get("cameras", []), problems)
    _check_sections(parts, complete, problems)
    _check_security(parts, problems)


def _check_security(parts: Mapping[str, Any], problems: Problems) -> None:
    """With ``security.curve``: every key file and allow-list named, present and readable."""
    security: SecuritySettings | None = parts.get("security")
    if security is None or not security.curve:
        return
    from defectd.daemon import curve  # imports zmq, which `defectd --help` does without

    cameras: Sequence[tuple[int, CameraSettings]] = parts.get("cameras", [])

    def check(path: str, value: str | None, load: Callable[[Path], object], why: str) -> None:
        if value is None:
            problems.add(path, f"required with security.curve: {why}")
            return
        try:
            load(Path(value))
        except curve.CurveKeyError as exc:
            problems.add(path, str(exc))

    check(
        "security.server_secret_key",
        security.server_secret_key,
        curve.load_key_pair,
        "the daemon's .key_secret (defectd keygen)",
    )
    if any(camera.mode == "bind" for _, camera in cameras):
        check(
            "security.ingest_clients_dir",
            security.ingest_clients_dir,
            curve.load_allow_list,
            "the folder of the public keys (.key) of the cameras allowed to push frames",
        )
    check(
        "security.subscriber_clients_dir",
        security.subscriber_clients_dir,
        curve.load_allow_list,
        "the folder of the public keys (.key) of the subscribers allowed to read events",
    )
    keyed: dict[str, tuple[int, str | None]] = {}
    for index, camera in cameras:
        first, key = keyed.setdefault(camera.endpoint, (index, camera.server_public_key))
        if camera.mode == "connect" and key != camera.server_public_key:
            message = f"cameras[{first}] shares {camera.endpoint} with another key: one socket"
            problems.add(f"cameras[{index}].server_public_key", f"{message}, one server key")
        elif camera.mode == "connect" and first == index:
            check(
                f"cameras[{index}].server_public_key",
                camera.server_public_key,
                curve.load_public_key,
                "the camera's public key (.key): its PUB is the CURVE server",
            )


def config_warnings(config: DaemonConfig) -> list[str]:
    """What is allowed but unwise, as ``FILE: key: warning`` lines (logged at start, printed
    by check-config): a secret key file others can read, an empty allow-list."""
    security = config.security
    if not security.curve:
        return []
    from defectd.daemon import curve

    warnings = []
    if security.server_secret_key is not None:
        readers = curve.loose_permissions(Path(security.server_secret_key))
        if readers:
            warnings.append(
                f"{config.source}: security.server_secret_key: {security.server_secret_key} "
                f"is readable by {readers}: chmod 600 it (and make the daemon's user own it)"
            )
    for key in ("ingest_clients_dir", "subscriber_clients_dir"):
        directory = getattr(security, key)
        if directory is None:
            continue
        try:
            empty = not curve.load_allow_list(Path(directory))
        except curve.CurveKeyError:
            continue  # a config problem, reported by parse_config
        if empty:
            warnings.append(
                f"{config.source}: security.{key}: {directory} holds no *.key certificate: "
                "every client is refused"
            )
    return warnings


def _check_cameras(cameras: Sequence[tuple[int, CameraSettings]], problems: Problems) -> None:
    """Unique ids, one mode per endpoint, geometry that places frames."""
    first_id: dict[str, int] = {}
    first_mode: dict[str, tuple[int, str]] = {}
    for index, camera in cameras:
        where = f"cameras[{index}]"
        if camera.id in first_id:
            other = f"cameras[{first_id[camera.id]}]"
            problems.add(f"{where}.id", f"{camera.id!r} is also {other}'s id: ids must be unique")
        first_id.setdefault(camera.id, index)
        try:
            parse_endpoint(camera.endpoint, bind=camera.mode == "bind")
        except ValueError as exc:
            problems.add(f"{where}.endpoint", str(exc))
        user, mode = first_mode.setdefault(camera.endpoint, (index, camera.mode))
        if mode != camera.mode:
            message = (
                f"cameras[{user}] {mode}s {camera.endpoint}: one endpoint, one socket, one mode"
            )
            problems.add(f"{where}.mode", message)
    for index, camera in cameras:
        if camera.across_mm_per_px is None:
            given = [
                key
                for key, is_set in (
                    ("left_mm", camera.left_mm != 0.0),
                    ("along_mm_per_px", camera.along_mm_per_px is not None),
                    ("along_from", camera.along_from != "position_m"),
                )
                if is_set
            ]
            if given:
                problems.add(
                    f"cameras[{index}].{given[0]}",
                    f"{', '.join(given)} without across_mm_per_px places nothing on the strip: "
                    "give the camera's across_mm_per_px too, or leave them out",
                )


def _check_sections(parts: Mapping[str, Any], complete: bool, problems: Problems) -> None:
    """Limits that depend on other keys, and addresses bound twice."""
    cameras: Sequence[tuple[int, CameraSettings]] = parts.get("cameras", [])
    ingest, slots, engine = parts["ingest"], parts["slots"], parts["engine"]
    if ingest is not None:
        _not_below(ingest, "ingest", "reconnect_ivl_ms", "reconnect_ivl_max_ms", problems)
        if ingest.heartbeat_ivl_ms:
            _not_below(ingest, "ingest", "heartbeat_ivl_ms", "heartbeat_timeout_ms", problems)
        sockets = len({camera.endpoint for _, camera in cameras})
        if complete and ingest.receivers > sockets:
            message = f"{ingest.receivers} receivers for {sockets} camera socket(s)"
            problems.add("ingest.receivers", f"{message}: one process reads a socket")
        for index, camera in cameras:
            encoding = camera.encoding or "mono8"
            needed = camera.width * camera.height * RAW_CHANNELS.get(encoding, 1)
            if ingest.max_frame_bytes < needed:
                message = f"less than one {encoding} frame of cameras[{index}] ({needed} bytes)"
                problems.add("ingest.max_frame_bytes", message)
                break
    if slots is not None and engine is not None and slots.count < 2 * engine.max_batch:
        # One batch is in the engine while the next one fills; fewer slots starve the engine.
        message = f"must be at least 2 × engine.max_batch = {2 * engine.max_batch}"
        problems.add("slots.count", f"{message}, got {slots.count}")
    store = parts.get("store")
    if store is not None and store.enabled:
        for index, camera in cameras:
            if camera.across_mm_per_px is None:
                problems.add(
                    "store.enabled",
                    f"cameras[{index}] ({camera.id}) has no across_mm_per_px: the store keeps "
                    "defects on the strip in mm and m; give every camera its geometry "
                    "(docs/cameras.md, calibrating the geometry)",
                )
                break
        if store.url is not None and not store.url.startswith(
            ("sqlite:///", "postgresql://", "postgres://")
        ):
            problems.add(
                "store.url",
                f"{store.url!r}: use sqlite:///PATH/defects.db or postgresql://USER@HOST/DB",
            )
    _check_outputs(parts, problems)
    if parts["restart"] is not None:
        _not_below(parts["restart"], "restart", "backoff_initial_s", "backoff_max_s", problems)
    _check_binds(cameras, parts["publish"], parts["metrics"], problems)


def _check_outputs(parts: Mapping[str, Any], problems: Problems) -> None:
    """The plant outputs: nothing open beyond this machine without its protection."""
    web, mqtt, opcua = parts.get("web"), parts.get("mqtt"), parts.get("opcua")
    if web is not None and web.enabled and web.token_file is None:
        host = parse_http_bind(web.bind).host
        if not is_loopback(host):
            problems.add(
                "web.token_file",
                f"web.bind {web.bind} is reachable from other machines: give a token file "
                "(one line, the token browsers must send; docs/integration.md), or bind "
                "127.0.0.1",
            )
    if mqtt is not None and mqtt.enabled:
        for index, camera in parts.get("cameras", []):
            if camera.id == "coil":
                problems.add(
                    f"cameras[{index}].id",
                    "'coil' is the MQTT bridge's topic level for coils (<prefix>/<line>/coil/"
                    "<coil_id>): give the camera another id",
                )
        if mqtt.ca_file is not None and not mqtt.tls:
            problems.add("mqtt.ca_file", "is for TLS: set mqtt.tls true, or leave it out")
        if (mqtt.username is None) != (mqtt.password_file is None):
            problems.add(
                "mqtt.password_file" if mqtt.username else "mqtt.username",
                "give username and password_file together (or neither)",
            )
    if opcua is None or not opcua.enabled:
        return
    unsecured = opcua.certificate is None or opcua.private_key is None
    if unsecured and not is_loopback(opcua_host(opcua.endpoint)):
        problems.add(
            "opcua.certificate",
            f"opcua.endpoint {opcua.endpoint} is reachable from other machines: give "
            "certificate and private_key (Basic256Sha256, docs/integration.md), or bind "
            "127.0.0.1",
        )


def _not_below(section: Any, path: str, low: str, high: str, problems: Problems) -> None:
    """``path.high`` must be at least ``path.low``."""
    low_value, high_value = getattr(section, low), getattr(section, high)
    if high_value < low_value:
        message = f"must be at least {low} ({low_value:g}), got {high_value:g}"
        problems.add(f"{path}.{high}", message)


def _check_binds(
    cameras: Sequence[tuple[int, CameraSettings]],
    publish: PublishSettings | None,
    metrics: MetricsSettings | None,
    problems: Problems,
) -> None:
    """What the daemon binds must not clash (cameras that share an endpoint share a socket)."""
    binds: list[tuple[str, str, Endpoint]] = []  # (key path, address, parsed)
    for index, camera in cameras:
        if camera.mode == "bind" and all(text != camera.endpoint for _, text, _ in binds):
            parsed = parse_endpoint(camera.endpoint)  # valid: checked with the camera
            binds.append((f"cameras[{index}].endpoint", camera.endpoint, parsed))
    if publish is not None:
        binds.append(("publish.bind", publish.bind, parse_endpoint(publish.bind)))
    if metrics is not None:
        binds.append(("metrics.bind", metrics.bind, parse_http_bind(metrics.bind)))
    for later, (path, text, endpoint) in enumerate(binds):
        clash = next((b for b in binds[:later] if endpoint.clashes(b[2])), None)
        if clash is not None:
            message = f"{text} is also bound by {clash[0]} ({clash[1]})"
            problems.add(path, f"{message}: use another port or path")
