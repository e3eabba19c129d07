"""The bundled models, as package data of hfldm (`hfldm.bundled`; see hfldm/resources.py)."""
