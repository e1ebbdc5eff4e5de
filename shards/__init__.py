"""loclip.shards: the webdataset shard format every stage reads and writes, and the skip accounting of streams.

``write`` makes deterministic tar shards atomically (the synthetic world, VESL labelling); ``read`` groups a
tar's members into samples from any source webdataset opens; ``skips`` counts what a stream skipped, by reason.
"""
