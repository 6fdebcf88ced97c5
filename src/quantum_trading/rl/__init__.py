"""Reinforcement learning on the simulator core: the gymnasium environment, SB3 policies,
training schedules, augmentation and action-bias analysis.

Needs the ``rl`` extra (torch, gymnasium, stable-baselines3); nothing below this package
imports it. Import submodules directly (``quantum_trading.rl.env``, ``.spec``, ...).
"""
