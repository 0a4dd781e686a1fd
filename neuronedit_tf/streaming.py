"""Data larger than memory: arrays, memory-mapped NPY files and ``tf.data`` as one chunked stream.

``NeuronEditor`` reads every input through :class:`Rows`, so peak memory is set by
the chunk, the shuffle buffer and the percentile reservoir, never by the number
of rows:

- statistics (per-feature mean and variance) in one streaming pass
  (:func:`moments`, Chan et al.'s parallel form of Welford's update, in float64);
- training batches from a ``tf.data`` pipeline (:func:`training_data`:
  shuffle buffer, batch, prefetch), with a deterministic validation split;
- edited output written chunk by chunk (:func:`write_chunks`).

A memory-mapped array (``np.load(path, mmap_mode="r")``, or an ``np.memmap``) is
read a chunk at a time and each chunk's pages are handed back to the kernel after
use (``madvise(MADV_DONTNEED)``), so reading a 10^7-row file does not grow the
process's resident set either.

Example:
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "cells.npy")
    >>> np.save(path, np.arange(12, dtype="float32").reshape(6, 2))
    >>> rows = Rows(np.load(path, mmap_mode="r"), "cells", chunk_rows=4)
    >>> [chunk.shape for chunk in rows.chunks()]
    [(4, 2), (2, 2)]
"""

from __future__ import annotations

import mmap

import numpy as np
import tensorflow as tf

from neuronedit_tf.errors import NeuronEditError
from neuronedit_tf.layers.neuron_edit import reservoir
from neuronedit_tf.validation import check_variance

#: Rows per chunk read, standardised, encoded or edited at a time (~10 MB at 37 features).
CHUNK_ROWS = 65536
#: Rows in the training shuffle buffer; data up to this size is shuffled exactly.
SHUFFLE_ROWS = 1 << 20

#: Wraps the functions of this module's ``tf.data`` maps: they hold no Python control flow, so
#: AutoGraph's conversion (~0.2 s of each fit, traced anew per pipeline) is skipped; the
#: traced graph is the same.
plain = tf.autograph.experimental.do_not_convert



def is_stream(data):
    """True for inputs read in chunks rather than validated whole: datasets and memory maps."""
    return isinstance(data, (tf.data.Dataset, np.memmap))


def _release(array, start, stop):
    """Drop the pages of rows ``[start, stop)`` of a memory-mapped array from this
    process's resident set. The data stays in the file (and the page cache); a later
    read faults the pages back in. A no-op for arrays that are not memory maps."""
    handle = getattr(array, "_mmap", None)
    if not isinstance(handle, mmap.mmap) or not array.flags.c_contiguous or stop <= start:
        return
    base = np.frombuffer(handle, np.uint8).ctypes.data
    row_bytes = array.strides[0]
    begin = array.ctypes.data - base + start * row_bytes
    end = array.ctypes.data - base + stop * row_bytes
    page = mmap.PAGESIZE
    begin, end = begin - begin % page, min(end, len(handle))
    if end > begin:
        handle.madvise(mmap.MADV_DONTNEED, begin, end - begin)


class Rows:
    """A finite stream of float32 samples of one set (S, T, X or data to edit).

    Args:
        data: a 2-D array (rows x features; images: ``(n, H, W[, C])``),
            including a memory map (``np.load(path, mmap_mode="r")``), or a
            ``tf.data.Dataset`` whose elements are batches ``(rows, features)``
            or single rows ``(features,)`` (images: batches ``(rows, H, W, C)``).
        name: the set's name, used in error messages.
        columns: feature names, if known (arrays from tables).
        images: the samples are images (a dataset's rank-3 elements are batches
            of single-channel images, as arrays of shape ``(n, H, W)`` are).
        chunk_rows: rows per chunk.

    Attributes:
        sample_shape: one sample's shape, e.g. ``(37,)``.
        n_rows: number of rows, or None for a dataset of unknown cardinality.
    """

    def __init__(self, data, name, columns=None, images=False, chunk_rows=CHUNK_ROWS):
        self.name = name
        self.columns = columns
        self.chunk_rows = int(chunk_rows)
        if isinstance(data, tf.data.Dataset):
            spec = data.element_spec
            if not isinstance(spec, tf.TensorSpec):
                raise NeuronEditError(
                    f"{name}: the dataset must yield feature tensors, not {type(spec).__name__} "
                    "elements such as (x, y) pairs or dicts; map it first, e.g. "
                    "dataset.map(lambda x, y: x)."
                )
            if not (spec.dtype.is_floating or spec.dtype.is_integer):
                raise NeuronEditError(f"{name}: the dataset yields {spec.dtype.name}; it must be numeric.")
            rank = spec.shape.rank
            batched = {False: 2, True: 4}[images]
            if rank is None or rank not in (batched - 1, batched):
                raise NeuronEditError(
                    f"{name}: the dataset's elements have shape {spec.shape}; expected batches "
                    + ("(rows, H, W, C) or (rows, H, W)." if images else
                       "(rows, features) or single rows (features,).")
                )
            if not images and rank == 1:
                data = data.batch(self.chunk_rows)
            elif images and rank == 3:
                data = data.map(plain(lambda x: x[..., None]))
            sample_shape = tuple(data.element_spec.shape[1:])
            if any(s is None for s in sample_shape):
                raise NeuronEditError(
                    f"{name}: the dataset's sample shape {sample_shape} is not fully known; "
                    "give it a static shape, e.g. dataset.map(lambda x: tf.ensure_shape(x, ...))."
                )
            self._dataset = data.map(plain(lambda x: tf.cast(x, tf.float32)))
            self._array = None
            self.sample_shape = tuple(int(s) for s in sample_shape)
            self.n_rows = None  # a dataset counts batches, not rows
        else:
            array = data if isinstance(data, np.ndarray) else np.asarray(data)
            if array.dtype.kind not in "biuf":
                raise NeuronEditError(f"{name} is not numeric (dtype {array.dtype}).")
            if images and array.ndim == 3:
                array = array[..., None]
            if array.ndim != (4 if images else 2) or len(array) == 0:
                raise NeuronEditError(
                    f"{name} must be a non-empty {'batch of images (n, H, W[, C])' if images else '2-D array (rows x features)'}; "
                    f"got shape {array.shape}."
                )
            self._array = array
            self._dataset = None
            self.sample_shape = tuple(int(s) for s in array.shape[1:])
            self.n_rows = len(array)

    @property
    def data(self):
        """The rows as given: the array (or memory map), or the dataset of float32 batches."""
        return self._array if self._array is not None else self._dataset

    @property
    def in_memory(self):
        """True for an ordinary array (not a memory map, not a dataset)."""
        return self._array is not None and not isinstance(self._array, np.memmap)

    def chunks(self):
        """Yield float32 numpy chunks ``(rows, *sample_shape)``; a memory map's pages
        are released after each chunk is copied out.

        A suspended generator holds no chunk (each is yielded straight from
        :meth:`_chunk`, never kept in a local), so streams read side by side (a study's
        100 anchors, :func:`training_data`) hold nothing but their position while
        another stream is read."""
        if self._array is None:
            yield from self._dataset.as_numpy_iterator()
            return
        for start in range(0, len(self._array), self.chunk_rows):
            yield self._chunk(start)

    def _chunk(self, start):
        """Rows ``[start, start + chunk_rows)`` of the array as a float32 copy; a memory
        map's pages of those rows are released."""
        stop = min(start + self.chunk_rows, len(self._array))
        chunk = np.array(self._array[start:stop], dtype=np.float32, copy=True)
        _release(self._array, start, stop)
        return chunk

    def dataset(self):
        """The stream as a ``tf.data.Dataset`` of float32 chunks."""
        if self._dataset is not None:
            return self._dataset
        if self.in_memory:
            # Already in memory: slice it as tensors (no Python per chunk).
            values = tf.data.Dataset.from_tensor_slices(self._array.astype(np.float32, copy=False))
            return values.batch(self.chunk_rows)
        spec = tf.TensorSpec((None,) + self.sample_shape, tf.float32)
        return tf.data.Dataset.from_generator(self.chunks, output_signature=spec)

    def standardised(self, preprocess, max_rows=None, seed=0):
        """Every row through ``preprocess`` (e.g. the fitted standardisation), as one float32
        array held in memory (``preprocess`` is called once per chunk).

        Args:
            max_rows: keep at most this many rows: beyond it, a uniform random sample of
                that size, seeded ``seed`` (:func:`~neuronedit_tf.layers.neuron_edit.reservoir`),
                so memory stays flat however long the stream; up to it, every row in order.
        """
        chunks = (np.asarray(preprocess(chunk, training=False), np.float32)
                  for chunk in self.chunks())
        if max_rows is None or (self.n_rows is not None and self.n_rows <= max_rows):
            return np.concatenate(list(chunks))
        rows = reservoir(chunks, int(max_rows), seed)
        return rows if len(rows) == max_rows else rows.copy()  # not a view of the full buffer

    def checked_chunks(self):
        """Like :meth:`chunks`, refusing NaN/inf with the row where it occurs."""
        seen = 0
        for chunk in self.chunks():
            finite = np.isfinite(chunk)
            if not finite.all():
                row = seen + int(np.argwhere(~finite)[0][0])
                raise NeuronEditError(
                    f"{self.name} contains NaN/inf values (first at row {row}); remove or "
                    "impute them first."
                )
            seen += len(chunk)
            yield chunk

    def check_width(self, sample_shape):
        """Refuse a stream whose samples differ in shape from the model's."""
        if self.sample_shape != tuple(sample_shape):
            raise NeuronEditError(
                f"{self.name} has samples of shape {self.sample_shape}; the model expects "
                f"{tuple(sample_shape)} ({sample_shape[-1]} columns)."
            )


def moments(streams, transform):
    """Per-feature mean and variance over all ``streams`` in one pass.

    Args:
        streams: :class:`Rows`; every chunk is checked for NaN/inf.
        transform: function applied to each chunk first (e.g. the arcsinh).

    Returns:
        ``(mean, variance, counts)``: float32 arrays of shape ``(features,)``
        (per channel for images; constant features get variance 1, as
        :func:`neuronedit_tf.models.standardisation_stats` does) and the number
        of rows in each stream.
    """
    total, mean, m2 = 0, None, None
    counts = []
    for stream in streams:
        rows = 0
        for chunk in stream.checked_chunks():
            rows += len(chunk)
            values = np.asarray(transform(chunk), np.float64)
            if not np.all(np.isfinite(values)):
                raise NeuronEditError(
                    f"The transform produced non-finite values on {stream.name}; check the input."
                )
            values = values.reshape(-1, values.shape[-1])
            n = len(values)
            chunk_mean = values.mean(axis=0)
            chunk_m2 = ((values - chunk_mean) ** 2).sum(axis=0)
            if mean is None:
                total, mean, m2 = n, chunk_mean, chunk_m2
                continue
            # Chan, Golub & LeVeque: merge two (count, mean, sum of squares) summaries.
            delta = chunk_mean - mean
            merged = total + n
            mean = mean + delta * (n / merged)
            m2 = m2 + chunk_m2 + delta**2 * (total * n / merged)
            total = merged
        if rows == 0:
            raise NeuronEditError(f"{stream.name} is empty: it yielded no rows.")
        counts.append(rows)
    variance = m2 / total
    check_variance(variance, streams[0].name if len(streams) == 1 else "source, target and extra")
    variance[~(variance > 1e-12)] = 1.0
    return mean.astype(np.float32), variance.astype(np.float32), counts


def _validation_mask(first_row, n_rows, validation_split):
    """Rows ``first_row ...`` that belong to the validation split: every
    ``1/validation_split``-th row of the concatenated stream, evenly spread and
    the same on every run and every worker."""
    index = tf.cast(first_row + tf.range(n_rows, dtype=tf.int64), tf.float64)
    return tf.floor((index + 1) * validation_split) > tf.floor(index * validation_split)


def training_data(streams, preprocess, n_rows, validation_split, batch_size, seed,
                  shuffle_rows=SHUFFLE_ROWS, validation_batch=8192, counts=None):
    """``tf.data`` pipelines of standardised training and validation batches.

    All ``streams`` (``n_rows`` rows together) are concatenated, standardised
    chunk by chunk with ``preprocess``, split into validation (every
    ``1/validation_split``-th row: ``floor(n_rows * validation_split)`` rows)
    and training rows, and the training rows are shuffled through a buffer of
    ``shuffle_rows`` (exact shuffling up to that size: then the rows are held once
    and their indices shuffled, and the validation rows are held from the same
    pass), batched and prefetched. Beyond ``shuffle_rows``, with ``counts`` (each
    stream's rows) the training rows are read from the streams side by side, so the
    buffer mixes them from the first batch (read one after the other, S's rows would
    train alone for the first part of every epoch, then T's, then X's; a study's
    batches one after the other): arrays and memory maps as every stream's chunks in
    a seeded random order, drawn afresh each epoch, each chunk read only when drawn
    (:func:`_shuffled_chunks`: one reader, nothing held per stream, so 100 open
    anchors cost what one does); with a ``tf.data`` stream among them, each stream's
    next chunk drawn in proportion to its rows (seeded). The validation rows are the
    same either way.

    Returns:
        ``(training, steps, validation)``: ``training`` repeats epoch after epoch
        (``steps`` batches each, of ``batch_size`` rows; an epoch's last batch may
        be smaller); read it with one iterator, so the shuffle order of every
        epoch is fixed by ``seed`` alone, whichever loop reads it. ``validation``
        is finite. Both yield float32 batches ``(rows, *sample_shape)``.
    """
    chunks = streams[0].dataset()
    for stream in streams[1:]:
        chunks = chunks.concatenate(stream.dataset())

    def locate(offset, chunk):
        n = tf.cast(tf.shape(chunk)[0], tf.int64)
        return offset + n, (chunk, _validation_mask(offset, n, validation_split))

    labelled = chunks.scan(tf.constant(0, tf.int64), plain(locate))
    standardised = labelled.map(plain(lambda chunk, held: (preprocess(chunk), held)),
                                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    n_validation = int(np.floor(n_rows * validation_split))
    n_training = n_rows - n_validation
    if n_training <= shuffle_rows:
        # The shuffle buffer would hold every training row anyway: hold them once as one
        # tensor and shuffle their indices instead. tf.data's shuffle draws the same order
        # whatever the elements are, so the batches are the very same rows as shuffling
        # the rows themselves, for a fraction of the per-row work at every epoch. The
        # validation rows are kept from the same single pass (the same values as reading
        # them again), so an epoch's validation does not standardise every row again.
        shape = streams[0].sample_shape
        held_chunks = []

        def training_chunks():
            for chunk, held in standardised.as_numpy_iterator():
                held_chunks.append(chunk[held])
                yield chunk[~held]

        rows = tf.constant(write_chunks(training_chunks(),
                                        np.empty((n_training,) + shape, np.float32)))
        held_rows = write_chunks(held_chunks, np.empty((n_validation,) + shape, np.float32))
        order = tf.data.Dataset.range(n_training).shuffle(
            n_training, seed=seed, reshuffle_each_iteration=True)
        training = order.batch(batch_size).map(plain(lambda index: tf.gather(rows, index)))
        validation = tf.data.Dataset.from_tensor_slices(held_rows).batch(validation_batch)
    else:
        source = standardised
        if counts is not None and len(streams) > 1:
            # Each stream's chunks labelled at its own offset in the concatenation (so the
            # same rows are held out as above), drawn side by side.
            offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
            if all(stream._array is not None for stream in streams):
                mixed = _shuffled_chunks(streams, offsets, validation_split, seed)
            else:  # a tf.data stream can only be read in order: draw among the streams
                parts = [stream.dataset().scan(tf.constant(offset, tf.int64), plain(locate))
                         for stream, offset in zip(streams, offsets)]
                weights = (np.asarray(counts, np.float64) / float(np.sum(counts))).tolist()
                mixed = tf.data.Dataset.sample_from_datasets(parts, weights=weights, seed=seed,
                                                             stop_on_empty_dataset=False)
            source = mixed.map(plain(lambda chunk, held: (preprocess(chunk), held)),
                               num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        kept = source.map(plain(lambda chunk, held: tf.boolean_mask(chunk, ~held)))
        training = kept.unbatch().shuffle(shuffle_rows, seed=seed,
                                          reshuffle_each_iteration=True).batch(batch_size)
        validation = (
            standardised.map(plain(lambda chunk, held: tf.boolean_mask(chunk, held)))
            .unbatch()
            .batch(validation_batch)
            .apply(tf.data.experimental.assert_cardinality(-(-n_validation // validation_batch)))
        )
    training = training.repeat().prefetch(tf.data.AUTOTUNE)
    validation = validation.prefetch(tf.data.AUTOTUNE)
    return training, -(-n_training // batch_size), validation


def _shuffled_chunks(streams, offsets, validation_split, seed):
    """Every chunk of the array (or memory-map) ``streams`` as ``(chunk, held)``, in a
    seeded random order drawn afresh each epoch; ``offsets``: each stream's first row in
    the concatenation (``held`` marks the validation rows as :func:`_validation_mask` does
    there). A chunk is read (and a memory map's pages released) only when it is drawn, by
    one reader for all streams: an open stream holds no chunk and no iterator of its own
    (100 suspended per-stream pipelines held ~0.7 MB each, their last chunks ~10 MB)."""
    table = np.array([(k, start, offset + start)
                      for k, (stream, offset) in enumerate(zip(streams, offsets))
                      for start in range(0, stream.n_rows, stream.chunk_rows)], np.int64)
    shape = (None,) + streams[0].sample_shape

    def read(k, start):
        return streams[int(k)]._chunk(int(start))

    def load(entry):
        chunk = tf.ensure_shape(tf.numpy_function(read, [entry[0], entry[1]], tf.float32), shape)
        n = tf.cast(tf.shape(chunk)[0], tf.int64)
        return chunk, _validation_mask(entry[2], n, validation_split)

    order = tf.data.Dataset.from_tensor_slices(table).shuffle(
        len(table), seed=seed, reshuffle_each_iteration=True)
    return order.map(plain(load))


def write_chunks(chunks, out):
    """Write consecutive chunks into ``out`` (an array or memory map of the full
    shape); a memory map's written pages are released as it goes. Returns ``out``."""
    start = 0
    for chunk in chunks:
        stop = start + len(chunk)
        if stop > len(out):
            raise NeuronEditError(f"out has {len(out)} rows; the data has more.")
        out[start:stop] = chunk
        _release(out, start, stop)
        start = stop
    if start != len(out):
        raise NeuronEditError(f"out has {len(out)} rows; the data has {start}.")
    return out

