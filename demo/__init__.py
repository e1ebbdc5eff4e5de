"""loclip.demo."""
