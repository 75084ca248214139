"""Invalid layer arguments raise errors that name the argument and the value."""

import pytest

from aconnect import AConnectConv1D, AConnectConv2D, AConnectDense, AConnectDepthwiseConv2D


@pytest.mark.parametrize("make, fragment", [
    (lambda: AConnectDense(0), "units=0"),
    (lambda: AConnectDense(3.5), "units=3.5"),
    (lambda: AConnectDense(3, exact="yes"), "exact='yes'"),
    (lambda: AConnectDense(3, seed="x"), "seed='x'"),
    (lambda: AConnectDense(3, mismatch=-1), "sigma=-1"),
    (lambda: AConnectDense(3, mismatch={"sigma": 0.5, "bits": 2}), "'bits'"),
    (lambda: AConnectDense(3, activation="nope"), "nope"),
    (lambda: AConnectConv2D(-1, 3), "filters=-1"),
    (lambda: AConnectConv2D(4, (3,)), "kernel_size=(3,)"),
    (lambda: AConnectConv2D(4, 3, strides=0), "strides=0"),
    (lambda: AConnectConv2D(4, 3, padding="full"), "padding='full'"),
    (lambda: AConnectConv2D(4, 3, padding="causal"), "padding='causal'"),
    (lambda: AConnectConv2D(4, 3, data_format="nhwc"), "data_format='nhwc'"),
    (lambda: AConnectConv2D(4, 3, strides=2, dilation_rate=2), "dilation_rate=(2, 2)"),
    (lambda: AConnectConv1D(4, 3, dilation_rate=(1, 1)), "dilation_rate=(1, 1)"),
    (lambda: AConnectDepthwiseConv2D(3, depth_multiplier=0), "depth_multiplier=0"),
])
def test_bad_arguments_name_themselves(make, fragment):
    with pytest.raises(ValueError) as err:
        make()
    assert fragment in str(err.value)


def test_unknown_input_width_is_reported():
    with pytest.raises(ValueError, match="last input dimension"):
        AConnectDense(3).build((None, None))


def test_positional_arguments_follow_keras():
    conv = AConnectConv2D(8, 3, 2, "same", "channels_last", 1)
    assert (conv.filters, conv.kernel_size, conv.strides, conv.padding) == (8, (3, 3), (2, 2), "same")
    depthwise = AConnectDepthwiseConv2D(3, 1, "same", 2)
    assert depthwise.depth_multiplier == 2 and depthwise.padding == "same"
    dense = AConnectDense(4, "relu", False)
    assert dense.units == 4 and not dense.use_bias
