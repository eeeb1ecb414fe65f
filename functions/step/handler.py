"""The Step task of the run workflow (`statemachine/run.asl.json`); see `chorus.workflow.tasks`."""

from chorus.workflow.handlers import TaskHandler

handler = TaskHandler("step")
