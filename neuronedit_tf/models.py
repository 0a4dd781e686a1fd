"""Autoencoders of the paper (Keras functional) and the in-graph pre/post-processing.

The autoencoders work on standardised values. ``preprocessing`` and
``postprocessing`` wrap them so that a full model takes raw values (e.g. CyTOF
counts) and returns raw values: optional ``arcsinh(x / cofactor)`` or logicle
(:mod:`neuronedit_tf.transforms`), then per-feature standardisation; and the
exact inverse on the way out.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from neuronedit_tf.errors import NeuronEditError
from neuronedit_tf.layers.ensemble import MemberSlice
from neuronedit_tf.layers.transforms import Arcsinh, Logicle, Saturate
from neuronedit_tf.transforms import logicle_options

TRANSFORMS = ("none", "arcsinh", "logicle")
BOTTLENECK = "bottleneck"


#: Standardised values are held within this many standard deviations of the mean, so
#: that no layer of the network can overflow float32 (a far value saturates, never NaN).
STANDARD_LIMIT = 1e12


def _transform_layer(transform, cofactor, inverse, name, logicle=None):
    if transform not in TRANSFORMS:
        raise NeuronEditError(f"transform must be one of {TRANSFORMS}; got {transform!r}.")
    if transform == "arcsinh":
        return Arcsinh(cofactor, inverse=inverse, name=name)
    if transform == "logicle":
        return Logicle(**logicle_options(logicle), inverse=inverse, name=name)
    return None


def transform_values(values, transform="none", cofactor=5.0, logicle=None, inverse=False):
    """Apply the chosen transform in numpy (what the graph's first layer does; with
    ``inverse=True`` its exact inverse, what the last layer does).

    ``logicle``: the logicle parameters ``{t, w, m, a}`` (see
    :func:`neuronedit_tf.transforms.logicle_options`) when ``transform="logicle"``."""
    layer = _transform_layer(transform, cofactor, inverse, None, logicle)
    values = np.asarray(values, np.float32)
    return values if layer is None else layer(values).numpy()


def standardisation_stats(values):
    """Per-feature mean and variance; constant features get variance 1 (not 0),
    so they standardise to 0 and never divide by zero."""
    from neuronedit_tf.streaming import Rows, moments

    values = np.asarray(values, np.float32)
    values = values.reshape(-1, values.shape[-1])
    mean, variance, _ = moments([Rows(values, "values")], lambda chunk: chunk)
    return mean, variance


def _shape(shape):
    return (int(shape),) if np.isscalar(shape) else tuple(int(s) for s in shape)


def preprocessing(shape, mean, variance, transform="none", cofactor=5.0, logicle=None):
    """Raw values -> standardised values (a functional model named ``preprocessing``).

    ``shape`` is one sample's shape (``d`` or ``(d,)``; ``(H, W, C)`` for images,
    standardised per channel)."""
    inputs = keras.Input(_shape(shape), name="raw")
    x = inputs
    layer = _transform_layer(transform, cofactor, False, "transform", logicle)
    if layer is not None:
        x = layer(x)
    x = keras.layers.Normalization(mean=mean, variance=variance, name="standardise")(x)
    x = Saturate(STANDARD_LIMIT, name="saturate")(x)
    return keras.Model(inputs, x, name="preprocessing")


def postprocessing(shape, mean, variance, transform="none", cofactor=5.0, logicle=None):
    """Standardised values -> raw values: the exact inverse of ``preprocessing``."""
    inputs = keras.Input(_shape(shape), name="standardised")
    x = keras.layers.Normalization(
        mean=mean, variance=variance, invert=True, name="unstandardise"
    )(inputs)
    layer = _transform_layer(transform, cofactor, True, "untransform", logicle)
    if layer is not None:
        x = layer(x)
    x = Saturate(name="saturate")(x)  # an inverse that overflows float32 ends at its limit
    return keras.Model(inputs, x, name="postprocessing")


def dense_autoencoder(n_features, hidden=(500, 250, 50), leak=0.2, seed=None):
    """The paper's dense autoencoder: ``hidden`` then its mirror, LeakyReLU, linear output.

    Layers are a chain: ``encoder_dense_{i}``/``encoder_act_{i}``, the last
    encoder activation named ``bottleneck`` (the layer edited by default),
    ``decoder_dense_{i}``/``decoder_act_{i}``, and ``reconstruction``.

    Args:
        n_features: input width d.
        hidden: encoder widths; the decoder mirrors all but the last.
        leak: LeakyReLU negative slope (paper: 0.2).
        seed: seeds the weight initialisers.

    Returns:
        ``keras.Model`` mapping ``(batch, d)`` -> ``(batch, d)``.

    Example:
        >>> model = dense_autoencoder(35)
        >>> model.get_layer("bottleneck").output.shape
        (None, 50)
    """
    init = keras.initializers.GlorotUniform
    inputs = keras.Input((n_features,), name="standardised")
    x = inputs
    sizes = list(hidden) + list(hidden[-2::-1])
    n_encoder = len(hidden)
    for i, units in enumerate(sizes):
        part = "encoder" if i < n_encoder else "decoder"
        k = i if i < n_encoder else i - n_encoder
        x = keras.layers.Dense(
            units, kernel_initializer=init(None if seed is None else seed + i),
            name=f"{part}_dense_{k}",
        )(x)
        name = BOTTLENECK if i == n_encoder - 1 else f"{part}_act_{k}"
        x = keras.layers.LeakyReLU(negative_slope=leak, name=name)(x)
    outputs = keras.layers.Dense(
        n_features, kernel_initializer=init(None if seed is None else seed + len(sizes)),
        name="reconstruction",
    )(x)
    return keras.Model(inputs, outputs, name="dense_autoencoder")


def side_by_side(members, name="autoencoders"):
    """Autoencoders of one input side by side, trained as one model: ``(batch, members * d)``.

    Member ``k`` is the nested model ``members[k]`` renamed ``autoencoder_<k>``; the
    output is the members' reconstructions concatenated, so the mean squared error
    against the input repeated ``members`` times (what
    :func:`neuronedit_tf.distribute.train` minimises with ``copies=members``) is the
    mean of the members' own errors: one step updates every member from its own loss,
    and no member sees another's output. Used by ``NeuronEditor(members=K)``.

    Example:
        >>> joint = side_by_side([dense_autoencoder(4, (8, 3), seed=s) for s in (0, 1)])
        >>> joint.output.shape, joint.get_layer("autoencoder_1").output.shape
        ((None, 8), (None, 4))
    """
    members = list(members)
    for k, member in enumerate(members):
        member.name = f"autoencoder_{k}"
    rows = keras.Input(tuple(members[0].input.shape[1:]), name="standardised")
    outputs = [member(rows) for member in members]
    joined = (outputs[0] if len(outputs) == 1 else
              keras.layers.Concatenate(name="member_reconstructions")(outputs))
    return keras.Model(rows, joined, name=name)


def conv_autoencoder(image_shape, filters=(64, 128, 256), leak=0.2, seed=None):
    """The paper's conv autoencoder: stride-2 4x4 convolutions, 64-128-256-128-64 filters.

    The encoder halves the image size with each of ``filters``; the decoder
    mirrors it with transposed convolutions and ends in a linear ``reconstruction``
    convolution back to the input's channels. The last encoder activation is
    named ``bottleneck``. Height and width must be divisible by ``2**len(filters)``
    (pad first otherwise; e.g. 8x8 digits work with ``filters=(64, 128, 256)``).

    Example:
        >>> model = conv_autoencoder((8, 8, 1))
        >>> model.get_layer("bottleneck").output.shape
        (None, 1, 1, 256)
    """
    height, width, channels = image_shape
    factor = 2 ** len(filters)
    if height % factor or width % factor:
        raise NeuronEditError(
            f"Image size {height}x{width} is not divisible by {factor} (2**len(filters)); "
            "pad the images or use fewer filters."
        )
    init = keras.initializers.GlorotUniform
    inputs = keras.Input(tuple(image_shape), name="standardised")
    x = inputs
    n_encoder = len(filters)
    for i, units in enumerate(filters):
        x = keras.layers.Conv2D(
            units, 4, strides=2, padding="same",
            kernel_initializer=init(None if seed is None else seed + i), name=f"encoder_conv_{i}",
        )(x)
        name = BOTTLENECK if i == n_encoder - 1 else f"encoder_act_{i}"
        x = keras.layers.LeakyReLU(negative_slope=leak, name=name)(x)
    for i, units in enumerate(list(filters[-2::-1]) + [filters[0]]):
        x = keras.layers.Conv2DTranspose(
            units, 4, strides=2, padding="same",
            kernel_initializer=init(None if seed is None else seed + n_encoder + i),
            name=f"decoder_conv_{i}",
        )(x)
        x = keras.layers.LeakyReLU(negative_slope=leak, name=f"decoder_act_{i}")(x)
    outputs = keras.layers.Conv2D(
        channels, 3, padding="same",
        kernel_initializer=init(None if seed is None else seed + 2 * n_encoder + 1),
        name="reconstruction",
    )(x)
    return keras.Model(inputs, outputs, name="conv_autoencoder")


#: Rows per call of :func:`run`. For 65,536 rows a dense autoencoder's intermediates are
#: ~130 MB each (500 wide): the first such call in a process took 0.8-1.4 s, against
#: 0.15-0.2 s in 16,384-row chunks (later calls ~0.15 s either way, 66,667 x 37 rows, on the
#: 2-core machine of benchmarks/SPEED.md). A fit makes several such passes (the edit's
#: tables, the calibration, the gate). Each row's result does not depend on the chunking (bit for bit here).
RUN_ROWS = 16384


def run(model, values, batch_size=RUN_ROWS):
    """``model(values)`` in chunks, as float32 numpy (no per-call retracing as with predict).

    The output is allocated once and filled chunk by chunk (no list of chunks to
    concatenate), so peak memory is the input, the output and one chunk.
    """
    values = np.asarray(values, np.float32)
    out = None
    for i in range(0, len(values), batch_size):
        chunk = np.asarray(model(values[i : i + batch_size], training=False))
        if out is None:  # shaped from the first chunk: a bare layer has no symbolic output
            out = np.empty((len(values),) + chunk.shape[1:], np.float32)
        out[i : i + batch_size] = chunk
    if out is None:
        out = np.empty((0,) + tuple(model.compute_output_shape((None,) + values.shape[1:])[1:]),
                       np.float32)
    return out


def split_at(model, layer_name):
    """Split a chain autoencoder into (encoder, decoder) at ``layer_name``.

    The encoder maps the model's input to that layer's output; the decoder maps
    that output to the model's output. Both share the model's layers (and
    weights). The model must be a chain (each layer feeds only the next), as the
    autoencoders of this module are.
    """
    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        inner = [n for n in names[1:-1]]
        raise NeuronEditError(
            f"The model has no layer {layer_name!r}; inner layers are: {', '.join(inner)}."
        )
    position = names.index(layer_name)
    if position == 0 or position == len(names) - 1:
        raise NeuronEditError(
            f"{layer_name!r} is the model's input or output; choose an inner layer."
        )
    for layer in model.layers[1:]:
        if len(layer._inbound_nodes) != 1 or isinstance(layer.input, (list, tuple)):
            raise NeuronEditError(
                "split_at needs a chain model (one input per layer, used once); "
                f"layer {layer.name!r} is not. Build the encoder and decoder yourself."
            )
    encoder = keras.Model(model.input, model.get_layer(layer_name).output, name="encoder")
    latent = keras.Input(tuple(model.get_layer(layer_name).output.shape[1:]), name="latent")
    x = latent
    for layer in model.layers[position + 1 :]:
        x = layer(x)
    decoder = keras.Model(latent, x, name="decoder")
    return encoder, decoder


def ensemble(encoders, decoders):
    """Join autoencoders trained apart (same input, same code width) into one encoder/decoder.

    The encoder maps standardised rows to the members' codes side by side
    (``(batch, members * width)``); the decoder splits that back into the
    members' codes (:class:`MemberSlice`), decodes each with its own decoder and
    averages the reconstructions. A :class:`~neuronedit_tf.layers.NeuronEdit`
    on the joined codes is one edit per member (its maps are per neuron), so
    ``D(edit(E(x)))`` is the mean of the members' edited reconstructions and the
    residual edit ``x + D(edit(E(x))) - D(E(x))`` the mean of their decoded
    changes. One member gives back its own encoder and decoder.

    Args:
        encoders, decoders: equal-length lists of ``keras.Model`` (from :func:`split_at`).

    Returns:
        ``(encoder, decoder)``, ``keras.Model`` s named ``"encoder"`` and ``"decoder"``.

    Example:
        >>> parts = [split_at(dense_autoencoder(4, (8, 3), seed=s), "bottleneck") for s in (0, 9)]
        >>> encoder, decoder = ensemble([p[0] for p in parts], [p[1] for p in parts])
        >>> encoder.output.shape, decoder.output.shape
        ((None, 6), (None, 4))
    """
    encoders, decoders = list(encoders), list(decoders)
    if not encoders or len(encoders) != len(decoders):
        raise NeuronEditError(
            f"ensemble needs as many decoders as encoders (at least one); got "
            f"{len(encoders)} and {len(decoders)}.")
    if len(encoders) == 1:
        return encoders[0], decoders[0]
    widths = [int(e.output.shape[-1]) for e in encoders]
    if len(set(widths)) != 1 or any(len(e.output.shape) != 2 for e in encoders):
        raise NeuronEditError(f"ensemble members need flat codes of one width; got {widths}.")
    width = widths[0]
    for k, (e, d) in enumerate(zip(encoders, decoders)):
        e.name = f"encoder_{k}"
        d.name = f"decoder_{k}"
    rows = keras.Input(tuple(encoders[0].input.shape[1:]), name="standardised")
    codes = keras.layers.Concatenate(name="member_codes")([e(rows) for e in encoders])
    encoder = keras.Model(rows, codes, name="encoder")
    joined = keras.Input((width * len(encoders),), name="latent")
    decoded = [d(MemberSlice(k * width, (k + 1) * width, name=f"member_{k}")(joined))
               for k, d in enumerate(decoders)]
    decoder = keras.Model(joined, keras.layers.Average(name="member_mean")(decoded),
                          name="decoder")
    return encoder, decoder
