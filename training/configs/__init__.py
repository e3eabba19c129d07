"""Training configs, as package data of hfldm (`hfldm.configs`; see hfldm/resources.py)."""
