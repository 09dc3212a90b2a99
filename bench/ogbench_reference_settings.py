"""GCIVL's and GCIQL's settings in bench/ogbench_reference.py: which goalrl field carries each
of OGBench's cube-single settings (``MAPPING``; bench/ogbench_reference.goalrl_config sets every
one) and what goalrl cannot express (``NOT_EXPRESSIBLE``). CRL's, HIQL's and QRL's are in
bench/ogbench_reference_agents.py."""

# OGBench setting -> the goalrl field that carries it (goalrl_config sets every one)
MAPPING = [
    ("lr 3e-4, Adam, one optimiser over all nets", "lr=3e-4, weight_decay=0, max_grad_norm=0"),
    ("discount 0.99", "gamma=0.99"),
    ("expectile 0.9", "expectile=0.9"),
    ("tau 0.005 (target Polyak rate)", "tau=0.005"),
    ("GCIVL alpha 10 (AWR), exp clipped at 100", "alpha=10, max_weight=100"),
    ("GCIQL alpha 1.0 (cube-single command line), actor_loss ddpgbc",
     "alpha=1.0, actor_loss=ddpgbc"),
    ("const_std: actor std fixed at 1", "log_std_min=log_std_max=0 (std exp(0) = 1; beta-NLL "
     "weight var**beta = 1, so the NLL is -log_prob with its constant)"),
    ("value goals 0.2 current / 0.5 future (geometric) / 0.3 random",
     "value_goals (0.2, 0.5, 0.3, geometric)"),
    ("actor goals 1.0 future (uniform)", "actor_goals (0, 1, 0, uniform)"),
    ("gc_negative: r = 0 at the goal else -1, mask 0 at the goal", "fixed rule (value_agent)"),
    ("hidden widths 512", "encoder.embed_dim=512, fusion_dim=512, head_hidden_dim=512, "
     "state_hidden=[] (see NOT_EXPRESSIBLE for the layout)"),
    ("no acting average", "ema_tau=0 (acting only; no effect on these metrics)"),
    ("p_aug 0 (state)", "augment=false"),
]
NOT_EXPRESSIBLE = [
    "Network layout. OGBench: one MLP on [s, g] (and a), 3 x 512 GELU + LayerNorm, then a "
    "linear output; the actor's MLP has no LayerNorm and a mean layer initialised at scale "
    "1e-2. goalrl: a Siamese per-frame state encoder (linear, LayerNorm, tanh), a fusion MLP "
    "on [h, z, h*z, |h-z|] (2 x 512 ReLU), then ReLU heads (value: 512; Q: action joined at "
    "the head's first layer). PyTorch's default initialisation against flax's variance "
    "scaling (fan_avg, uniform).",
    "Actor mean: tanh-squashed in goalrl, unbounded in OGBench (DDPG+BC clips it to [-1, 1] "
    "before Q).",
    "GCIVL's expectile weight: goalrl takes its side from each head's own error; OGBench "
    "from the target network's advantage (min-of-heads target minus the heads' mean).",
    "Goal sampling: goalrl's geometric offsets follow the discount's law truncated to the "
    "episode; OGBench clips them at the last transition (the excess mass lands there). "
    "goalrl's goals may be an episode's final frame; OGBench's are observations of "
    "transitions (the final frame is only a next observation). Uniform actor goals: goalrl "
    "k uniform on 1..end-t; OGBench rounds a uniform point between t+1 and the last "
    "transition (end points at half weight; the last transition's goal is itself).",
    "Target update: goalrl moves the target toward the weights after the step; OGBench toward "
    "those before it (one update behind).",
]
