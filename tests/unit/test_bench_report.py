"""The benchmark report's table shows the floor comparison with its targets (no benchmark is run)."""

from __future__ import annotations

from support.benchmarks import load_benchmark

report = load_benchmark("report")


def test_the_floor_comparison_is_in_the_table_with_its_targets() -> None:
    floor = {
        "ttfb_ms": {"chorus_stream_tokens": 7.0, "floor": 5.0, "chorus_stream_steps": 11.0},
        "total_ms": {
            "chorus_stream_tokens": 26.0,
            "floor": 27.0,
            "chorus_stream_steps": 26.5,
            "chorus_non_streaming": 25.0,
        },
        "end_to_end_over_floor": 0.963,
        "ttfb_over_floor_ms": 2.0,
        "stream_steps_over_stream_tokens": 1.019,
        "non_streaming_over_stream_tokens": 1.2,
        "targets": {"stream_steps_over_stream_tokens": 1.05, "non_streaming_over_stream_tokens": 1.05},
        "met": {
            "end_to_end_over_floor": True,
            "ttfb_over_floor_ms": True,
            "stream_steps_over_stream_tokens": True,
            "non_streaming_over_stream_tokens": False,
        },
        "verified": True,
    }
    table = {figure: (value, target, verdict) for figure, value, target, verdict in report.rows({"floor": floor})}
    assert table["end to end, Chorus / floor (3 x 20 tokens, OpenAI fake)"] == (
        "0.963x (26.0 / 27.0 ms)",
        "<= 1.15x",
        "pass",
    )
    assert table["TTFB, Chorus - floor"] == ("2.0 ms (7.0 / 5.0 ms)", "<= 3 ms", "pass")
    assert table["non-streaming send / token streaming, end to end"] == ("1.2x", "<= 1.05x", "FAIL")
    assert "floor" in report.BENCHMARKS


def test_each_workflow_function_measured_has_its_memory_row() -> None:
    memory = {
        "runs": 20,
        "api_peak_mb": 86.0,
        "api_memory_size_mb": 256,
        "peak_over_configured": 0.336,
        "workflow": {
            "functions": {
                "plan": {"peak_mb": 101.0, "memory_size_mb": 256, "peak_over_configured": 0.395},
                "step": {"peak_mb": 160.0, "memory_size_mb": 256, "peak_over_configured": 0.625},
            }
        },
    }
    table = {figure: (value, target, verdict) for figure, value, target, verdict in report.rows({"memory": memory})}
    assert table["Plan function peak RSS, background runs / its memory"] == (
        "101.0 / 256 MB (0.395x)",
        "<= 0.6x",
        "pass",
    )
    assert table["Step function peak RSS, background runs / its memory"][2] == "FAIL"
    assert table["API process peak RSS, 20 foreground runs / ApiMemorySize"][2] == "pass"
