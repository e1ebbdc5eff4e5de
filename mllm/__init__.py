"""loclip.mllm."""
