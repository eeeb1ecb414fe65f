"""Background runs on Step Functions: Plan → Map(Step) → … → Finish.

The state machine (`statemachine/run.asl.json`) carries only small JSON
states; everything a run is lives in the store, so each task loads the run,
does its part with the same driver code the in-process executor uses, and
returns. `state` holds those JSON shapes, `staging` how a parallel round's
non-streaming calls hand their output over in plan order, `tasks` the
three tasks, `executor` the `StartExecution`/`StopExecution` side, and
`handlers` the Lambda entry points.
"""
