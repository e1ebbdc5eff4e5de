"""loclip.pretrain."""
