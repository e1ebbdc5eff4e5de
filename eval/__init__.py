"""loclip.eval."""
