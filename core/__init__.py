"""loclip.core: the kernel every package shares and nothing else: the recipe and flag framework, raster-only
image loading, sentence splitting, and how values are shown in messages. It imports no other loclip package."""
