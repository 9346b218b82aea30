"""Memory: activation-arena planners (TFLM-exact greedy, linear) and placement into a target's memory banks."""

from firmware_sim.memory.arena import ArenaPlan, plan_arena, buffer_requirements
from firmware_sim.memory.greedy import GreedyMemoryPlanner
from firmware_sim.memory.linear import LinearMemoryPlanner
from firmware_sim.memory.planner import Buffer, MemoryPlanner

__all__ = ["ArenaPlan", "plan_arena", "buffer_requirements", "GreedyMemoryPlanner", "LinearMemoryPlanner",
           "Buffer", "MemoryPlanner"]
