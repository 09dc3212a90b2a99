"""bench/eval_target_weights.py: the target weights replace the online (and acting) ones."""

from __future__ import annotations

import torch
from bench_modules import load_bench

from goalrl.agents.am import AMAgent, AMConfig
from goalrl.agents.task_q import TaskQAgent, TaskQConfig

probe = load_bench("eval_target_weights")
TINY = dict(conv_channels=[8, 8], embed_dim=16, fusion_dim=32, head_hidden_dim=16)


def test_target_weights_replace_the_online_weights() -> None:
    am = AMAgent(AMConfig(**TINY), (16, 16, 3), 4, seed=0)
    task = TaskQAgent(TaskQConfig(task_input="embedding", am=AMConfig(**TINY)), (16, 16, 3), 4)
    for agent in (am, task):
        with torch.no_grad():
            for p in agent.q.parameters():
                p.add_(1.0)  # online and target weights now differ
        if agent is task:
            task.z.data += 1.0
        probe.use_target_weights(agent)
        for name, p in agent.q.state_dict().items():
            torch.testing.assert_close(p, agent.q_target.state_dict()[name], msg=name)
    torch.testing.assert_close(task.z.detach(), task.z_target)
    # an AM agent acts with its weight average: that is replaced too
    for name, p in am.acting_q.state_dict().items():
        torch.testing.assert_close(p, am.q_target.state_dict()[name], msg=name)
