"""Agents for neuralgym worlds: PPO recipes as data, the one observation pipeline shared by
training and evaluation, ensembles, and collecting real episodes with an agent.

The ``agents/`` scripts and ``neuralgym learn`` are thin users of this package.
"""
