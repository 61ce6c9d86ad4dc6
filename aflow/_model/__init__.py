"""The graph model: tasks, edges, the flow's graph and how calls bind tasks into it (no running here).

`Flow` reaches the engine through one entry, `aflow._engine.run_flow`; nothing else in this
package imports the engine.
"""
