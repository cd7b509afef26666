"""Outputs for the plant's own systems, each an optional daemon stage (issue 16).

Every output reads the daemon's events from the publisher's internal feed (`feed`: the same
``[topic, json]`` messages the public PUB socket sends) and turns them into what its consumers
speak:

- `web`: a read-only web view for operators (line status, live defects, coils);
- `mqtt_bridge`: defect, coil and status events on MQTT topics;
- `opcua_server`: an OPC UA address space after OPC 40100 (Machine Vision).

Each implements `base.Output`; `daemon.stages.outputs` runs one per stage process, so a slow
or failing output never stalls the pipeline (its feed is a PUB socket: what it cannot take is
dropped at the high-water mark and counted).
"""
