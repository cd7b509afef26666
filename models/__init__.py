"""The bundled models, shipped as package data: one folder per model (ONNX files + model card).

Found through `importlib.resources`, so they work the same from a checkout, an editable
install and a wheel (`defectd.engines.model_card.bundled_model_dir`).
"""
