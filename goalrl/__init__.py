"""goalrl: learn robot skills from images without task labels."""

from goalrl.envs.registration import ENV_IDS, register_envs
from goalrl.errors import UserError

__version__ = "0.1.0"
__all__ = ["ENV_IDS", "UserError", "register_envs", "__version__"]

register_envs()
