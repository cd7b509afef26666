"""`defectd camera`: a GenICam gateway — frames from a GigE Vision / USB3 Vision camera
(through Aravis) published in the defectd protocol (docs/cameras.md)."""
