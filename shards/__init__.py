"""Stream curated WebDataset shards into training, with actions in a model's action space."""

from shards.action_space import SPACES, ActionSpace, from_space, get_space, to_space
from shards.location import open_shards
from shards.reader import ShardError, clip_dataset, decode_sample

__all__ = ["SPACES", "ActionSpace", "ShardError", "clip_dataset", "decode_sample", "from_space",
           "get_space", "open_shards", "to_space"]
