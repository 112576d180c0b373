"""minidiff.wengert: the Wengert list with primal, tangent, adjoint and tape-bytes columns."""

from __future__ import annotations

import json
import unicodedata

import numpy as np
import pytest

import minidiff as md
from minidiff import core
from minidiff.memory import MeteredTape
from minidiff.reverse import ReverseEngine


def host(x):
    return np.asarray(md.to_host(x), dtype=np.float64)


def column(tr, attribute):
    return [float(getattr(row, attribute)) for row in tr.rows]


def square3(x):
    for _ in range(3):
        x = x * x
    return x


def f1(x1):
    x1 = x1 * x1
    x1 = x1 * x1
    return [x1, x1, x1]


def f2(x1, x2, x3):
    return (x1 * x2 * x3) ** 2


def plain_tape_nbytes(f, *args):
    """The bytes a plain reverse-mode tape (no forward level around it) keeps per node."""
    engine = ReverseEngine(MeteredTape())
    level = core.open_level(engine)
    try:
        f(*[engine.tape.add_input(md.asarray(a), level) for a in args])
    finally:
        core.close_level(level)
    return [engine.tape.nbytes_of(node) for node in engine.tape.nodes]


# ---------------------------------------------------------------------------------------------
# The tutorial's examples, against values worked out by hand
# ---------------------------------------------------------------------------------------------


def test_square3_rows_match_hand_computed_sweeps():
    tr = md.wengert(square3, 2.0)
    assert [r.name for r in tr.rows] == ["x1", "v1", "v2", "v3"]
    assert [r.definition for r in tr.rows] == [
        "input", "multiply(x1, x1)", "multiply(v1, v1)", "multiply(v2, v2)"]
    assert column(tr, "primal") == [2, 4, 16, 256]           # x, x², x⁴, x⁸
    assert column(tr, "tangent") == [1, 4, 32, 1024]         # 1, 2x, 4x³, 8x⁷
    assert column(tr, "adjoint") == [1024, 256, 32, 1]       # ∂y/∂v: 8x⁷, 4v1³, 2v2, 1
    assert [r.nbytes for r in tr.rows] == [0, 8, 8, 8]       # x·x keeps x (once) for both factors
    assert [r.kept for r in tr.rows] == [(), ("x1",), ("v1",), ("v2",)]  # one buffer each
    assert tr.tape_bytes == 24
    assert tr.outputs == [3] and tr.rows[3].outputs == ("y",)


def test_square3_rules_and_adjoints_summed_over_both_uses():
    tr = md.wengert(square3, 2.0)
    v3 = tr["v3"].rule
    assert v3.value == "v3 = v2 · v2"
    assert v3.tangent == "v\u03073 = v\u03072 · v2 + v\u03072 · v2"       # v̇3 = v̇2·v2 + v̇2·v2
    assert v3.adjoint == ("v\u03042 += v\u03043 · v2",) * 2          # v̄2 += v̄3·v2, once per factor
    assert tr["x1"].rule.value == "x1 = input" and tr["x1"].rule.adjoint == ()
    # v2 is used twice by v3 (v̄3 = 1, v2 = 16): two contributions of 16 that sum to v̄2 = 32
    assert [(src, float(g)) for src, g in tr["v2"].contributions] == [("v3", 16.0), ("v3", 16.0)]
    assert [(src, float(g)) for src, g in tr["x1"].contributions] == [("v1", 512.0)] * 2
    assert [src for src, _ in tr["v3"].contributions] == ["y\u0304"]   # the seed ȳ
    for row in tr.rows:
        assert sum(float(g) for _, g in row.contributions) == float(row.adjoint)
    assert tr["v2"].accumulation == "v\u03042 = 16 (v3) + 16 (v3) = 32"


def test_f1_one_forward_sweep_gives_all_three_outputs():
    tr = md.wengert(f1, 2.0)
    assert tr.returns_sequence
    assert tr.outputs == [2, 2, 2]
    assert tr.rows[2].outputs == ("y1", "y2", "y3")
    assert column(tr, "tangent") == [1, 4, 32]                 # dy/dx = 4x³ = 32 for each
    assert column(tr, "adjoint") == [96, 24, 3]                # ȳ = (1, 1, 1): three 32s summed


def test_f1_reverse_sweep_with_unit_cotangent_gives_one_jacobian_row():
    tr = md.wengert(f1, 2.0, cotangent=[1.0, 0.0, 0.0])
    assert column(tr, "adjoint") == [32, 8, 1]


def test_f2_rows_match_hand_computed_sweeps():
    tr = md.wengert(f2, 1.0, 2.0, 3.0, tangents=(1.0, 0.0, 0.0))
    assert [r.definition for r in tr.rows[3:]] == [
        "multiply(x1, x2)", "multiply(v1, x3)", "power(v2, 2)"]
    assert column(tr, "primal") == [1, 2, 3, 2, 6, 36]
    assert column(tr, "tangent") == [1, 0, 0, 2, 6, 72]       # ∂/∂x1 = 2·6·x2·x3 = 72
    assert column(tr, "adjoint") == [72, 36, 24, 36, 12, 1]   # the whole gradient in one sweep
    assert [r.nbytes for r in tr.rows] == [0, 0, 0, 16, 16, 8]
    assert tr["v3"].kept == ("v2",)
    assert tr.inputs == [0, 1, 2]
    assert tr["v2"].rule.adjoint == ("v\u03041 += v\u03042 · x3", "x\u03043 += v\u03042 · v1")
    assert [(src, float(g)) for src, g in tr["x3"].contributions] == [("v2", 24.0)]


def test_contributions_of_a_value_used_by_several_rows_sum_to_its_adjoint():
    # x feeds sin, the product and exp: three uses, three terms (in the order the reverse sweep
    # reaches them), one adjoint
    tr = md.wengert(lambda x: md.sin(x) * x + md.exp(x), 0.5)
    assert [src for src, _ in tr["x1"].contributions] == ["v3", "v2", "v1"]
    terms = [float(g) for _, g in tr["x1"].contributions]
    # exp: v̄3·exp(x); product v2 = v1·x: v̄2·v1 = sin x; sin: v̄1·cos x with v̄1 = v̄2·x = x
    np.testing.assert_allclose(terms, [np.exp(0.5), np.sin(0.5), 0.5 * np.cos(0.5)], rtol=1e-15)
    assert sum(terms) == pytest.approx(float(tr["x1"].adjoint), rel=1e-15)
    assert "(v3) + " in tr["x1"].accumulation and tr["x1"].accumulation.endswith("= 2.56694")


# ---------------------------------------------------------------------------------------------
# The columns agree with the transforms and the tape
# ---------------------------------------------------------------------------------------------


def mixed(x, y):
    z = md.sin(x) * y + md.exp(x / 3.0)
    return md.sum(md.where(x > 0.0, z, y) ** 2) / md.mean(y)


@pytest.fixture
def xy(to_array):
    return to_array([0.3, -1.2, 0.7]), to_array([1.5, 0.4, 2.0])


def test_tangent_column_equals_jvp(xy, to_array):
    tx, ty = to_array([1.0, -2.0, 0.5]), to_array([0.3, 0.0, 1.0])
    tr = md.wengert(mixed, *xy, tangents=(tx, ty))
    value, tangent = md.jvp(mixed, xy, (tx, ty))
    out = tr.rows[tr.outputs[0]]
    np.testing.assert_allclose(host(out.primal), host(value), rtol=1e-12)
    np.testing.assert_allclose(host(out.tangent), host(tangent), rtol=1e-12)
    np.testing.assert_array_equal(host(tr.rows[0].tangent), host(tx))


def test_every_rows_contributions_sum_to_its_adjoint(xy):
    # arrays, broadcasting (x / 3.0), where, sum and mean: each adjoint is the sum of the terms
    # its uses sent (rounding: the same additions in the same order, so 1e-15 is ample)
    tr = md.wengert(mixed, *xy)
    assert sum(len(r.contributions) > 1 for r in tr.rows) >= 2  # x and y are used repeatedly
    for row in tr.rows:
        total = sum(host(g) for _, g in row.contributions)
        np.testing.assert_allclose(total, host(row.adjoint), rtol=1e-15, atol=1e-15,
                                   err_msg=row.name)
        assert len(row.rule.adjoint) == sum(row.traced)  # one adjoint rule per traced argument


def test_input_adjoints_equal_grad(xy):
    tr = md.wengert(mixed, *xy)
    gx, gy = md.grad(mixed, argnums=(0, 1))(*xy)
    np.testing.assert_allclose(host(tr.rows[0].adjoint), host(gx), rtol=1e-12)
    np.testing.assert_allclose(host(tr.rows[1].adjoint), host(gy), rtol=1e-12)


def test_input_adjoints_of_several_outputs_equal_vjp(xy, to_array):
    def g(x, y):
        return md.sin(x) * y, md.sum(x * x)

    u = (to_array([1.0, 2.0, -1.0]), to_array(0.5))
    tr = md.wengert(g, *xy, cotangent=u)
    _, pullback = md.vjp(lambda x, y: md.concatenate([g(x, y)[0], md.reshape(g(x, y)[1], (1,))]),
                         *xy)
    gx, gy = pullback(md.concatenate([u[0], md.reshape(u[1], (1,))]))
    np.testing.assert_allclose(host(tr.rows[0].adjoint), host(gx), rtol=1e-12)
    np.testing.assert_allclose(host(tr.rows[1].adjoint), host(gy), rtol=1e-12)


@pytest.mark.parametrize("example", [square3, f1])
def test_sweeps_agree_on_every_backend(backend, example):
    tr = md.wengert(example, 2.0)
    assert column(tr, "tangent")[-1] == 32 * (example is f1) + 1024 * (example is square3)
    assert float(tr.rows[0].adjoint) == 96 * (example is f1) + 1024 * (example is square3)
    assert tr["v1"].kept == ("x1",)
    assert sum(float(g) for _, g in tr["x1"].contributions) == float(tr.rows[0].adjoint)


def test_bytes_column_equals_what_a_plain_tape_keeps(xy):
    tr = md.wengert(mixed, *xy)
    assert [r.nbytes for r in tr.rows] == plain_tape_nbytes(mixed, *xy)
    assert [r.nbytes for r in md.wengert(f2, 1.0, 2.0, 3.0).rows] == plain_tape_nbytes(
        f2, 1.0, 2.0, 3.0)


def checkpointed(x, y):
    def block(v):
        return md.sin(v) * v

    looped = md.checkpointed_loop(lambda s, t: y * md.sin(s), x * 1.0, 6, 2)
    return md.sum(md.checkpoint(block)(x * y) + looped)


def test_checkpoint_nodes_are_rows_with_their_arguments_and_a_plain_tapes_bytes(xy):
    tr = md.wengert(checkpointed, *xy)
    assert [r.op for r in tr.rows] == ["input", "input", "multiply", "checkpointed_loop",
                                       "multiply", "checkpoint(block)", "add", "sum"]
    assert tr["v4"].definition == "checkpoint(block)(v3)" and tr["v4"].kept == ("v3",)
    assert [r.nbytes for r in tr.rows] == plain_tape_nbytes(checkpointed, *xy)
    gx, gy = md.grad(checkpointed, argnums=(0, 1))(*xy)
    np.testing.assert_allclose(host(tr.rows[0].adjoint), host(gx), rtol=1e-12)
    np.testing.assert_allclose(host(tr.rows[1].adjoint), host(gy), rtol=1e-12)


def test_rows_are_the_primitives_of_composite_ops(backend):
    tr = md.wengert(lambda x: md.mean(md.tan(x)), md.asarray([0.1, 0.2]))
    assert [r.op for r in tr.rows] == ["input", "sin", "cos", "divide", "sum", "divide"]


def test_unreached_rows_get_zero_adjoint_and_constant_outputs_none():
    tr = md.wengert(lambda x: (md.sin(x), 3.0), 1.0)
    assert tr.outputs == [1, None]
    tr = md.wengert(lambda x: [x, md.cos(x)][0], 1.0)
    assert [r.op for r in tr.rows] == ["input", "cos"]
    assert float(tr["v1"].adjoint) == 0.0


# ---------------------------------------------------------------------------------------------
# Showing and exporting
# ---------------------------------------------------------------------------------------------


def test_str_is_an_aligned_table_with_every_column():
    text = str(md.wengert(square3, 2.0))
    lines = text.splitlines()
    assert "the tape keeps 24 bytes" in lines[0]
    for header in ("row", "value rule", "primal", "tangent", "adjoint", "tape bytes"):
        assert header in lines[1]
    assert len({len(line.rstrip()) for line in lines[1:3]}) == 1  # header over its rule
    assert "v3 = v2 · v2" in text and "1024" in text


def test_tables_stay_aligned_with_combining_marks():
    # v̄ and v̇ are a letter and a combining mark: two characters, one column
    for sweep in ("forward", "reverse"):
        lines = md.wengert(f2, 1.0, 2.0, 3.0).table(sweep).splitlines()
        assert len(lines) == 8
        rule = lines[1]
        for line in lines[2:]:
            visible = "".join(c for c in line if not unicodedata.combining(c))
            # every column starts where its dashes start
            for k, ch in enumerate(rule):
                if k > 0 and ch == "-" and rule[k - 1] == " " and k - 1 < len(visible):
                    assert visible[k - 1] == " ", (sweep, line)


def test_sweep_tables_run_in_their_own_direction():
    tr = md.wengert(square3, 2.0)
    forward = tr.table("forward").splitlines()[2:]
    reverse = tr.table("reverse").splitlines()[2:]
    assert [line.split()[0] for line in forward] == ["x1", "v1", "v2", "v3"]
    assert [line.split()[0] for line in reverse] == ["v3", "v2", "v1", "x1"]
    assert "adjoint" not in tr.table("forward") and "tangent" not in tr.table("reverse")
    assert "v\u03072 = v\u03071 · v1 + v\u03071 · v1" in tr.table("forward")
    assert "v\u03042 = 16 (v3) + 16 (v3) = 32" in tr.table("reverse")
    with pytest.raises(ValueError, match="sweep"):
        tr.table("sideways")


def test_large_arrays_are_summarised_small_ones_shown():
    text = str(md.wengert(lambda x: md.sin(x), md.asarray([0.5 * i for i in range(20)])))
    assert "0..9.5 mean 4.75" in text
    assert "[1, -2, 3]" in str(md.wengert(lambda x: x * 1.0, md.asarray([1.0, -2.0, 3.0])))


def test_to_dict_is_plain_json():
    d = md.wengert(f1, 2.0).to_dict()
    json.dumps(d)
    assert d["outputs"] == [2, 2, 2] and d["tape_bytes"] == 16
    assert d["rows"][2]["tangent"] == 32.0 and d["rows"][0]["adjoint"] == 96.0


# ---------------------------------------------------------------------------------------------
# Errors and hygiene
# ---------------------------------------------------------------------------------------------


def test_seeds_are_checked():
    with pytest.raises(md.ShapeError, match="tangents"):
        md.wengert(lambda x: x, md.asarray([1.0, 2.0]), tangents=(md.asarray([1.0]),))
    with pytest.raises(ValueError, match="one per input"):
        md.wengert(f2, 1.0, 2.0, 3.0, tangents=(1.0,))
    with pytest.raises(TypeError, match="one cotangent per output"):
        md.wengert(f1, 2.0, cotangent=1.0)
    with pytest.raises(TypeError, match="inputs"):
        md.wengert(square3)


def test_levels_are_closed_even_when_f_raises():
    depth = len(core.active_levels())

    def bad(x):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        md.wengert(bad, 1.0)
    md.wengert(square3, 2.0)
    assert len(core.active_levels()) == depth


def test_a_jitted_call_with_two_outputs_is_a_row_per_output_and_the_adjoints_are_the_gradient():
    pair = md.jit(lambda x: (md.sin(x), x * 2.0))

    def f(x):
        a, b = pair(x)
        return md.sum(a * b)

    x = np.array([0.1, 0.2])
    tr = md.wengert(f, x)
    assert [r.op for r in tr.rows] == ["input", "jit", "jit[0]", "jit[1]", "multiply", "sum"]
    np.testing.assert_allclose(host(tr.rows[0].adjoint), host(md.grad(f)(x)), rtol=1e-12)
