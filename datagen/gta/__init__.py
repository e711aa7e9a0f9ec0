"""GTA V recorder backend: the collector of the Script Hook V plugin's per-frame messages, OBS
Studio control, and the synchronisation of the two into contract episodes (docs/gta.md)."""
