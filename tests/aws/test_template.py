"""`template.yaml`: linted offline, then transformed by the SAM translator and its wiring asserted.

cfn-lint (which validates the SAM transform too) catches schema errors, but
neither it nor `sam validate` checks what the template *means*: an unknown
`AWS_LWA_INVOKE_MODE` silently falls back to buffered responses, and a table
that differs from the store's key schema only fails at run time. These tests
pin that wiring on the CloudFormation the translator generates.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

from chorus.settings import Settings
from chorus.store.dynamodb_keys import TTL_ATTRIBUTE
from chorus.store.dynamodb_table import table_definition
from chorus.workflow.handlers import PUBLISHED_ALIAS

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SSM_PARAMETER = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${ApiKeysParameterName}"
LWA_LAYER = "arn:aws:lambda:${AWS::Region}:753240598075:layer:LambdaAdapterLayerArm64:30"
STATE_MACHINE = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:${AWS::StackName}-run"
EXECUTIONS = "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:${AWS::StackName}-run:*"
STOP_AND_DESCRIBE = ["states:DescribeExecution", "states:StopExecution"]
DEFINITION = ROOT / "statemachine" / "run.asl.json"
TASKS = {"Plan": "plan", "Step": "step", "Finish": "finish"}


def _offline_env() -> dict[str, str]:
    """No credentials, a region, no telemetry: what CI has."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_DEFAULT_REGION="us-east-1", SAM_CLI_TELEMETRY="0")
    return env


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    """The CloudFormation the SAM transform generates (local code paths replaced by S3 URIs, as `sam package` does)."""
    template = yaml_parse(TEMPLATE.read_text())
    for resource in template["Resources"].values():
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            if key in resource.get("Properties", {}):
                resource["Properties"][key] = "s3://bucket/key"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        out: dict[str, Any] = transform(template, {}, None)
    return out


def _of_type(cfn: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in cfn["Resources"].items() if r["Type"] == kind}


def _statements(cfn: dict[str, Any]) -> list[dict[str, Any]]:
    """Every IAM statement of every role and of every policy of its own, with `Fn::If` branches
    (other than NoValue) flattened."""
    found: list[dict[str, Any]] = []
    roles = _of_type(cfn, "AWS::IAM::Role").values()
    documents = [p["PolicyDocument"] for r in roles for p in r["Properties"].get("Policies", [])]
    documents += [p["Properties"]["PolicyDocument"] for p in _of_type(cfn, "AWS::IAM::Policy").values()]
    for document in documents:
        for statement in document["Statement"]:
            if "Fn::If" in statement:
                found.extend(b for b in statement["Fn::If"][1:] if b != {"Ref": "AWS::NoValue"})
            else:
                found.append(statement)
    return found


def _aliased(cfn: dict[str, Any], alias: str) -> dict[str, Any]:
    """The function behind the alias `alias` (a logical id), checked to be an alias of its published version."""
    resource = cfn["Resources"][alias]
    assert resource["Type"] == "AWS::Lambda::Alias" and resource["Properties"]["Name"] == "live"
    version = cfn["Resources"][resource["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]]
    assert version["Type"] == "AWS::Lambda::Version"
    function: dict[str, Any] = cfn["Resources"][resource["Properties"]["FunctionName"]["Ref"]]
    assert version["Properties"]["FunctionName"] == resource["Properties"]["FunctionName"]
    return function


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_cfn_lint_passes_offline() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(TEMPLATE)],
        capture_output=True,
        text=True,
        env=_offline_env(),
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_function_url_streams_through_the_web_adapter(cfn: dict[str, Any]) -> None:
    (url,) = _of_type(cfn, "AWS::Lambda::Url").values()
    assert url["Properties"]["InvokeMode"] == "RESPONSE_STREAM"
    assert url["Properties"]["AuthType"] == {"Ref": "FunctionUrlAuthType"}
    function = _aliased(cfn, url["Properties"]["TargetFunctionArn"]["Ref"])["Properties"]
    env = function["Environment"]["Variables"]
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert env["AWS_LWA_INVOKE_MODE"] == "response_stream"  # anything else silently buffers
    assert env["AWS_LWA_READINESS_CHECK_PATH"] == "/v1/health"
    assert function["Handler"] == "run.sh"
    assert (function["Runtime"], function["Architectures"]) == ("python3.12", ["arm64"])
    run_sh = ROOT / "functions/api/run.sh"
    assert run_sh.stat().st_mode & stat.S_IXUSR and b"\r" not in run_sh.read_bytes()
    assert f'--port "${{AWS_LWA_PORT:-{env["AWS_LWA_PORT"]}}}"' in run_sh.read_text()


def test_function_uses_the_chorus_layer_and_the_arm64_adapter(cfn: dict[str, Any]) -> None:
    function = cfn["Resources"]["ApiFunction"]["Properties"]
    chorus_layer, adapter = function["Layers"]
    assert cfn["Resources"][chorus_layer["Ref"]]["Type"] == "AWS::Lambda::LayerVersion"
    assert adapter == {"Fn::Sub": LWA_LAYER}
    layer = yaml_parse(TEMPLATE.read_text())["Resources"]["ChorusLayer"]
    assert layer["Properties"]["ContentUri"] == "layers/chorus/"
    assert layer["Metadata"] == {"BuildMethod": "python3.12", "BuildArchitecture": "arm64"}


def test_layer_requirements_are_the_runtime_and_aws_dependencies() -> None:
    """`sam build` installs `layers/chorus/requirements.txt`: the core dependencies plus `[aws]`, no dev tools."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {d.replace("[standard]", "") for d in [*project["dependencies"], *project["optional-dependencies"]["aws"]]}
    lines = (ROOT / "layers/chorus/requirements.txt").read_text().splitlines()
    assert {line for line in lines if line and not line.startswith("#")} == wanted


@pytest.mark.parametrize("function", ["ApiFunction", "PlanFunction", "StepFunction", "FinishFunction"])
def test_function_environment_names_real_settings(cfn: dict[str, Any], function: str) -> None:
    env = cfn["Resources"][function]["Properties"]["Environment"]["Variables"]
    chorus = {name.removeprefix("CHORUS_").lower() for name in env if name.startswith("CHORUS_")}
    assert chorus <= set(Settings.model_fields), chorus - set(Settings.model_fields)
    assert env["CHORUS_STORE"] == "dynamodb"
    assert env["CHORUS_TABLE_NAME"] == {"Ref": "Table"}
    assert env["CHORUS_API_KEYS_PARAMETER"] == {"Ref": "ApiKeysParameterName"}
    assert env["CHORUS_EVENT_RETENTION_S"] == {"Ref": "EventRetentionSeconds"}
    assert env["CHORUS_FANOUT_CONCURRENCY"] == {"Ref": "FanoutConcurrency"}
    assert env["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}
    assert env["CHORUS_EXECUTOR"] == "stepfunctions"
    assert env["CHORUS_STATE_MACHINE_ARN"] == {"Fn::Sub": STATE_MACHINE}
    assert env["CHORUS_WORKFLOW_HISTORY_BUDGET"] == {"Ref": "WorkflowHistoryBudget"}


def test_the_state_machine_runs_the_definition_with_every_task_wired(cfn: dict[str, Any]) -> None:
    """The machine's name is the one the functions' `CHORUS_STATE_MACHINE_ARN` is built from, every
    `${…}` of `run.asl.json` is substituted, and each task names its function, whose code is
    `functions/<task>/handler.py` with the chorus layer and X-Ray tracing."""
    machine = cfn["Resources"]["RunStateMachine"]["Properties"]
    assert machine["StateMachineType"] == "STANDARD"
    assert machine["StateMachineName"] == {"Fn::Sub": "${AWS::StackName}-run"}
    assert STATE_MACHINE.endswith(":stateMachine:" + machine["StateMachineName"]["Fn::Sub"])
    assert machine["TracingConfiguration"] == {"Enabled": True}
    placeholders = set(re.findall(r"\$\{(\w+)\}", DEFINITION.read_text()))
    substitutions = machine["DefinitionSubstitutions"]
    assert set(substitutions) == placeholders == {f"{task}FunctionArn" for task in TASKS}
    source = yaml_parse(TEMPLATE.read_text())["Resources"]
    assert source["RunStateMachine"]["Properties"]["DefinitionUri"] == "statemachine/run.asl.json"
    for task, folder in TASKS.items():
        name = cfn["Resources"][substitutions[f"{task}FunctionArn"]["Ref"]]["Properties"]["FunctionName"]["Ref"]
        function = _aliased(cfn, substitutions[f"{task}FunctionArn"]["Ref"])["Properties"]
        assert source[name]["Properties"]["CodeUri"] == f"functions/{folder}/"
        assert function["Handler"] == "handler.handler"
        assert (ROOT / "functions" / folder / "handler.py").read_text().count(f'TaskHandler("{folder}")') == 1
        assert function["Layers"] == [{"Ref": next(n for n in cfn["Resources"] if n.startswith("ChorusLayer"))}]
        assert function["TracingConfig"] == {"Mode": "Active"}


def test_table_matches_the_store_definition(cfn: dict[str, Any]) -> None:
    """The template's table and `table_definition()` (what tests and local tables use) cannot drift."""
    table = cfn["Resources"]["Table"]
    props = table["Properties"]
    expected = table_definition("ignored")
    assert props["BillingMode"] == expected["BillingMode"] == "PAY_PER_REQUEST"

    def by(key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        return {item[key]: item for item in items}

    assert by("AttributeName", props["AttributeDefinitions"]) == by("AttributeName", expected["AttributeDefinitions"])
    assert props["KeySchema"] == expected["KeySchema"]
    assert by("IndexName", props["GlobalSecondaryIndexes"]) == by("IndexName", expected["GlobalSecondaryIndexes"])
    assert props["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert "TableName" not in props  # CloudFormation names it; the function gets it through CHORUS_TABLE_NAME
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"


def test_iam_has_no_wildcard_actions_and_the_store_only_reaches_its_table(cfn: dict[str, Any]) -> None:
    statements = _statements(cfn)
    actions = [a for s in statements for a in _as_list(s["Action"])]
    assert actions and not [a for a in actions if "*" in a]
    for statement in statements:
        assert statement["Effect"] == "Allow"
        services = {a.split(":")[0] for a in _as_list(statement["Action"])}
        resources = _as_list(statement["Resource"])
        assert "*" not in resources, statement
        if services == {"dynamodb"}:
            assert resources == [{"Fn::GetAtt": ["Table", "Arn"]}, {"Fn::Sub": "${Table.Arn}/index/*"}]
        elif services == {"ssm"}:
            assert _as_list(statement["Action"]) == ["ssm:GetParameter"]
            assert resources == [{"Fn::Sub": SSM_PARAMETER}]
        elif services == {"bedrock"}:
            assert _as_list(statement["Action"]) == ["bedrock:InvokeModelWithResponseStream"]
            assert all(":foundation-model/" in r["Fn::Sub"] or ":inference-profile/" in r["Fn::Sub"] for r in resources)
        elif services == {"states"}:
            # the run state machine only (by its fixed name), or its executions
            assert resources in ([{"Fn::Sub": STATE_MACHINE}], [{"Fn::Sub": EXECUTIONS}]), statement
            wanted = ["states:StartExecution"] if resources == [{"Fn::Sub": STATE_MACHINE}] else STOP_AND_DESCRIBE
            assert sorted(_as_list(statement["Action"])) == wanted
        elif services == {"lambda"} and statement.get("Sid") == "StartRunsDirectly":
            assert _as_list(statement["Action"]) == ["lambda:InvokeFunction"]
            assert resources == [{"Ref": "PlanFunctionAliaslive"}]
        elif services == {"lambda"}:
            assert _as_list(statement["Action"]) == ["lambda:InvokeFunction"]
            function = statement["Resource"]["Fn::Sub"][1]["functionName"]["Ref"]
            assert function in {"PlanFunction", "StepFunction", "FinishFunction", "ToolRunnerFunction"}
        elif services == {"logs"}:
            assert sorted(_as_list(statement["Action"])) == ["logs:CreateLogStream", "logs:PutLogEvents"]
            assert resources == [{"Fn::GetAtt": ["ToolRunnerLogGroup", "Arn"]}]
        else:
            pytest.fail(f"unexpected statement {statement}")
    assert {s.split(":")[0] for s in actions} == {"dynamodb", "ssm", "bedrock", "states", "lambda", "logs"}


TABLE_ACTIONS = [
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
]


@pytest.mark.parametrize(
    ("function", "extra"),
    [("ApiFunction", ["dynamodb:BatchGetItem"]), ("PlanFunction", []), ("StepFunction", []), ("FinishFunction", [])],
)
def test_each_function_may_call_on_the_table_what_its_store_calls(
    cfn: dict[str, Any], function: str, extra: list[str]
) -> None:
    """Listings read related blocks and tools with `BatchGetItem`; only the API lists."""
    role = cfn["Resources"][f"{function}Role"]
    statements = [s for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]
    table = [s for s in statements if s.get("Sid") == "StoreTable"]
    assert len(table) == 1
    assert sorted(_as_list(table[0]["Action"])) == sorted([*TABLE_ACTIONS, *extra])


def test_api_keys_parameter_is_granted_only_when_named(cfn: dict[str, Any]) -> None:
    policies = cfn["Resources"]["ApiFunctionRole"]["Properties"]["Policies"]
    conditional = [s for p in policies for s in p["PolicyDocument"]["Statement"] if "Fn::If" in s]
    keys = [s["Fn::If"] for s in conditional if s["Fn::If"][0] == "HasApiKeysParameter"]
    assert len(keys) == 1 and keys[0][1]["Action"] == ["ssm:GetParameter"]
    assert cfn["Conditions"]["HasApiKeysParameter"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ApiKeysParameterName"}, ""]}]
    }


def test_public_url_needs_keys_and_grants_only_url_invocation(cfn: dict[str, Any]) -> None:
    permissions = _of_type(cfn, "AWS::Lambda::Permission")
    assert {p["Condition"] for p in permissions.values()} == {"IsPublicUrl"}
    by_action = {p["Properties"]["Action"]: p["Properties"] for p in permissions.values()}
    assert by_action["lambda:InvokeFunctionUrl"]["FunctionUrlAuthType"] == "NONE"
    assert by_action["lambda:InvokeFunction"]["InvokedViaFunctionUrl"] is True
    (assertion,) = cfn["Rules"]["PublicUrlNeedsKeys"]["Assertions"]
    assert assertion["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ApiKeysParameterName"}, ""]}]}


def test_outputs(cfn: dict[str, Any]) -> None:
    outputs = cfn["Outputs"]
    assert outputs["FunctionUrl"]["Value"] == {"Fn::GetAtt": ["ApiFunctionUrl", "FunctionUrl"]}
    assert outputs["TableName"]["Value"] == {"Ref": "Table"}
    assert outputs["StateMachineArn"]["Value"] == {"Ref": "RunStateMachine"}


def _role_statements(cfn: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return [s for p in cfn["Resources"][role]["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]


@pytest.mark.parametrize("function", ["PlanFunction", "FinishFunction"])
def test_the_tasks_that_end_runs_may_start_the_next_run_in_line(cfn: dict[str, Any], function: str) -> None:
    """Finish, and a Plan that finishes its run inline, hand the group to its next queued run
    (`DoubleTexting.advance`), a background one by `StartExecution`: without the grant the call is
    refused on AWS (moto does not check IAM) and the run waits for the API's recovery sweep."""
    role = cfn["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    starts = [s for s in _role_statements(cfn, role) if "states:StartExecution" in _as_list(s["Action"])]
    assert [_as_list(s["Resource"]) for s in starts] == [[{"Fn::Sub": STATE_MACHINE}]]


def test_tool_runner_is_tenant_isolated_and_its_role_can_only_write_its_own_logs(cfn: dict[str, Any]) -> None:
    """A tool that takes the ToolRunner's credentials can write log lines and nothing else, and
    Lambda never gives one tenant's invocation an execution environment another tenant used."""
    function = cfn["Resources"]["ToolRunnerFunction"]
    props = function["Properties"]
    assert function["Type"] == "AWS::Lambda::Function"
    assert props["TenancyConfig"] == {"TenantIsolationMode": "PER_TENANT"}
    assert props["Handler"] == "handler.handler"
    assert "TracingConfig" not in props  # tracing would need X-Ray permissions on the role
    assert props["Role"] == {"Fn::GetAtt": ["ToolRunnerRole", "Arn"]}
    assert props["LoggingConfig"] == {"LogGroup": {"Ref": "ToolRunnerLogGroup"}}
    role = cfn["Resources"]["ToolRunnerRole"]["Properties"]
    assert "ManagedPolicyArns" not in role and "PermissionsBoundary" not in role
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}
    (statement,) = _role_statements(cfn, "ToolRunnerRole")
    assert statement["Effect"] == "Allow"
    assert sorted(statement["Action"]) == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert statement["Resource"] == {"Fn::GetAtt": ["ToolRunnerLogGroup", "Arn"]}
    assert cfn["Resources"]["ToolRunnerLogGroup"]["Type"] == "AWS::Logs::LogGroup"
    source = yaml_parse(TEMPLATE.read_text())["Resources"]["ToolRunnerFunction"]["Properties"]
    assert source["CodeUri"] == "functions/toolrunner/"
    assert "from chorus.tools.tool_runner import handler" in (ROOT / "functions/toolrunner/handler.py").read_text()


def test_tool_runner_gives_tools_time_and_holds_no_secret(cfn: dict[str, Any]) -> None:
    """Its timeout leaves the handler room to end a tool that uses all of `CHORUS_TOOL_TIMEOUT_S`; its
    environment adds nothing to the shared configuration names (no keys: those live in SSM, unreachable)."""
    from chorus.tools.tool_runner import RESERVED_S

    props = cfn["Resources"]["ToolRunnerFunction"]["Properties"]
    assert props["Timeout"] >= Settings().tool_timeout_s + RESERVED_S
    assert props["MemorySize"] <= 1024
    shared = yaml_parse(TEMPLATE.read_text())["Globals"]["Function"]["Environment"]["Variables"]
    env = props["Environment"]["Variables"]
    assert set(env) == set(shared)
    assert not {name for name in env if name in {"CHORUS_API_KEYS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}}


@pytest.mark.parametrize("function", ["ApiFunction", "PlanFunction", "StepFunction"])
def test_functions_that_run_tools_run_them_on_the_tool_runner(cfn: dict[str, Any], function: str) -> None:
    env = cfn["Resources"][function]["Properties"]["Environment"]["Variables"]
    assert env["CHORUS_TOOL_EXECUTOR"] == "lambda"
    assert env["CHORUS_TOOL_RUNNER_FUNCTION"] == {"Ref": "ToolRunnerFunction"}
    invokes = [
        s
        for s in _role_statements(cfn, f"{function}Role")
        if "Fn::If" not in s and s["Action"] == ["lambda:InvokeFunction"]
    ]
    assert [s["Resource"]["Fn::Sub"][1]["functionName"] for s in invokes] == [{"Ref": "ToolRunnerFunction"}]


def _invoked_function(statement: dict[str, Any]) -> Any:
    """The function a `LambdaInvokePolicy` statement names, else None."""
    resource = statement.get("Resource")
    if not isinstance(resource, dict) or not isinstance(resource.get("Fn::Sub"), list):
        return None
    return resource["Fn::Sub"][1].get("functionName")


def test_only_the_functions_that_run_tools_may_invoke_the_tool_runner(cfn: dict[str, Any]) -> None:
    may_invoke = {
        name.removesuffix("Role")
        for name, role in _of_type(cfn, "AWS::IAM::Role").items()
        for p in role["Properties"].get("Policies", [])
        for s in p["PolicyDocument"]["Statement"]
        if _invoked_function(s) == {"Ref": "ToolRunnerFunction"}
    }
    assert may_invoke == {"ApiFunction", "PlanFunction", "StepFunction"}, "Plan runs inline turns"


@pytest.mark.parametrize("function", ["ApiFunction", "PlanFunction", "StepFunction", "FinishFunction"])
def test_snapstart_is_an_option_of_the_published_versions_everything_invokes(
    cfn: dict[str, Any], function: str
) -> None:
    """`SnapStart=PublishedVersions` snapshots each function's published version; the Function URL, its
    public permissions and the state machine invoke the `live` alias, so they reach that version."""
    parameter = cfn["Parameters"]["SnapStart"]
    assert parameter["Default"] == "None" and parameter["AllowedValues"] == ["None", "PublishedVersions"]
    assert cfn["Conditions"]["UseSnapStart"] == {"Fn::Equals": [{"Ref": "SnapStart"}, "PublishedVersions"]}
    props = cfn["Resources"][function]["Properties"]
    assert props["SnapStart"] == {"ApplyOn": {"Fn::If": ["UseSnapStart", "PublishedVersions", "None"]}}
    assert _aliased(cfn, f"{function}Aliaslive") is cfn["Resources"][function]
    if function == "ApiFunction":
        (url,) = _of_type(cfn, "AWS::Lambda::Url").values()
        assert url["Properties"]["TargetFunctionArn"] == {"Ref": "ApiFunctionAliaslive"}
        for permission in ("PublicUrlPermission", "PublicUrlInvokePermission"):
            assert cfn["Resources"][permission]["Properties"]["FunctionName"] == {"Ref": "ApiFunctionAliaslive"}
    else:
        task = function.removesuffix("Function")
        substitution = cfn["Resources"]["RunStateMachine"]["Properties"]["DefinitionSubstitutions"]
        assert substitution[f"{task}FunctionArn"] == {"Ref": f"{function}Aliaslive"}


def test_the_tool_runner_is_not_snapshotted(cfn: dict[str, Any]) -> None:
    """Its environments are per tenant and invoked by name ($LATEST): no snapshot shared between tenants."""
    assert "SnapStart" not in cfn["Resources"]["ToolRunnerFunction"]["Properties"]
    assert not [name for name in cfn["Resources"] if name.startswith("ToolRunnerFunctionAlias")]


def test_the_adapter_relays_snapstarts_hooks_to_paths_the_app_serves(cfn: dict[str, Any]) -> None:
    from chorus.api import create_app
    from chorus.snapstart import AFTER_PATH, BEFORE_PATH

    env = cfn["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]
    paths = {BEFORE_PATH: env[BEFORE_PATH], AFTER_PATH: env[AFTER_PATH]}
    assert all(p.startswith("/_chorus/") for p in paths.values()), "outside /v1: no tenant route, no lazy module"
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {**paths, "AWS_LAMBDA_FUNCTION_NAME": "chorus-test"}.items():
            mp.setenv(name, value)
        app = create_app()
    routes = {getattr(r, "path", None) for r in app.routes}
    assert set(paths.values()) <= routes


def test_background_runs_start_directly_on_the_plan_alias_by_default(cfn: dict[str, Any]) -> None:
    """`BackgroundStart=Invoke` (the default): the API, and Plan and Finish for the runs they start,
    invoke the Plan function's `live` alias (the version the state machine invokes), may invoke only
    it and only then, and an event is retried
    twice (the sweep's grace, `DIRECT_GRACE_S`, counts on Lambda's retries being over)."""
    parameter = cfn["Parameters"]["BackgroundStart"]
    assert parameter["Default"] == "Invoke" and parameter["AllowedValues"] == ["Invoke", "Execution"]
    assert cfn["Conditions"]["StartsDirectly"] == {"Fn::Equals": [{"Ref": "BackgroundStart"}, "Invoke"]}
    env = cfn["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert env["CHORUS_WORKFLOW_START"] == {"Fn::If": ["StartsDirectly", "invoke", "execution"]}
    assert env["CHORUS_PLAN_FUNCTION"] == {"Ref": "PlanFunctionAliaslive"}
    functions = ("PlanFunction", "StepFunction", "FinishFunction")
    tasks = {f: cfn["Resources"][f]["Properties"]["Environment"]["Variables"] for f in functions}
    # the runs Plan and Finish start (sleeptime agents', a group's next in line) start the same way
    assert tasks["PlanFunction"]["CHORUS_WORKFLOW_START"] == tasks["FinishFunction"]["CHORUS_WORKFLOW_START"]
    assert tasks["PlanFunction"]["CHORUS_WORKFLOW_START"] == env["CHORUS_WORKFLOW_START"]
    assert "CHORUS_PLAN_FUNCTION" not in tasks["PlanFunction"], "its own alias: `handlers.own_alias` adds it"
    assert cfn["Resources"]["PlanFunctionAliaslive"]["Properties"]["Name"] == PUBLISHED_ALIAS
    assert tasks["FinishFunction"]["CHORUS_PLAN_FUNCTION"] == {"Ref": "PlanFunctionAliaslive"}
    assert not {"CHORUS_WORKFLOW_START", "CHORUS_PLAN_FUNCTION"} & set(tasks["StepFunction"])
    (own,) = _of_type(cfn, "AWS::IAM::Policy").values()
    assert own["Condition"] == "StartsDirectly"
    assert own["Properties"]["Roles"] == [{"Ref": "PlanFunctionRole"}, {"Ref": "FinishFunctionRole"}]
    (statement,) = own["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == ["lambda:InvokeFunction"] and statement["Resource"] == [
        {"Ref": "PlanFunctionAliaslive"}
    ]
    conditional = [s["Fn::If"] for s in _role_statements(cfn, "ApiFunctionRole") if "Fn::If" in s]
    (direct,) = [c for c in conditional if c[0] == "StartsDirectly"]
    assert direct[1]["Action"] == ["lambda:InvokeFunction"] and direct[1]["Resource"] == [
        {"Ref": "PlanFunctionAliaslive"}
    ]
    assert direct[2] == {"Ref": "AWS::NoValue"}
    configs = list(_of_type(cfn, "AWS::Lambda::EventInvokeConfig").values())
    assert [c["Properties"]["Qualifier"] for c in configs] == ["live"]
    assert configs[0]["Properties"]["FunctionName"] == {"Ref": "PlanFunction"}
    assert configs[0]["Properties"]["MaximumRetryAttempts"] == 2
