"""loclip.encoder."""
