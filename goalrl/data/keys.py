"""Names of the arrays in a goal-conditioned batch.

Batches are plain dicts keyed by these constants (never positional tuples), so
samplers, agents and tests agree on one vocabulary.
"""

OBS_IMAGE = "obs_image"  # (B, H, W, 3) uint8: camera at time t
NEXT_OBS_IMAGE = "next_obs_image"  # (B, H, W, 3) uint8: camera at time t + 1
GOAL_IMAGE = "goal_image"  # (B, H, W, 3) uint8: the goal, a frame of the dataset
ACTION = "action"  # (B, A) float32: action taken at time t, in [-1, 1]
OBS_PROPRIO = "obs_proprio"  # (B, P) float32, optional: low-dim robot state at t
NEXT_OBS_PROPRIO = "next_obs_proprio"  # (B, P) float32, optional: robot state at t + 1
REACHED = "reached"  # (B,) bool: the goal is the next frame (k == 1) -> target 1
CHAINED = "chained"  # (B,) bool: goal drawn from another episode (goal chaining)
OFFSET = "offset"  # (B,) int64: k = goal index - t (>= 1) for hindsight goals, -1 if chained
REWARD = "reward"  # (B,) float32, optional: task reward r(o_t, a_t) from labels
DONE = "done"  # (B,) bool, optional: t + 1 is the last frame of its episode
FRAME_INDEX = "frame_index"  # (B,) int64: global frame index of o_t
GOAL_INDEX = "goal_index"  # (B,) int64: global frame index of the goal frame
# low-dim state observations (EncoderConfig.kind=state): arm and object coordinates
OBS_STATE = "obs_state"  # (B, S) float32: state at time t
NEXT_OBS_STATE = "next_obs_state"  # (B, S) float32: state at time t + 1
GOAL_STATE = "goal_state"  # (B, S) float32: the goal's state
# goal mixtures (GoalBatchSampler value_goals/actor_goals): GOAL_* is then the value goal
AT_GOAL = "at_goal"  # (B,) bool: o_t is the (value) goal frame itself, goal index == t
ACTOR_GOAL_INDEX = "actor_goal_index"  # (B,) int64: frame index of the actor's goal
ACTOR_GOAL_IMAGE = "actor_goal_image"  # (B, H, W, 3) uint8: the actor's goal (image kind)
ACTOR_GOAL_STATE = "actor_goal_state"  # (B, S) float32: the actor's goal (state kind)
# subgoal k steps ahead toward the actor goal (GoalBatchSampler subgoal_steps > 0; HIQL)
SUBGOAL_INDEX = "subgoal_index"  # (B,) int64: min(t + k, actor goal or episode end)
SUBGOAL_IMAGE = "subgoal_image"  # (B, H, W, 3) uint8
SUBGOAL_STATE = "subgoal_state"  # (B, S) float32
