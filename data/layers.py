"""Keras layers at the front of every model: time shift, recording conditions, spectrograms, SpecAugment.

They run wherever the model runs (on the GPU when there is one) and are saved with it,
so an exported model takes raw 22050 Hz audio and there is no train/serve mismatch.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import soxr
from keras import ops

from data.catalogue import SAMPLE_RATE


def dft_kernel(n_fft: int, window: np.ndarray | None = None) -> np.ndarray:
    """The windowed real DFT as a convolution kernel ``[n_fft, 1, 2 * (n_fft // 2 + 1)]``: the real
    parts, then the imaginary parts, of every bin ``keras.ops.stft`` returns (``window`` of ``n_fft``
    samples; default a periodic Hann window, as ``keras.ops.stft``'s "hann")."""
    window = np.hanning(n_fft + 1)[:-1] if window is None else np.asarray(window, np.float64)
    angle = 2 * np.pi * np.outer(np.arange(n_fft), np.arange(n_fft // 2 + 1)) / n_fft
    kernel = np.concatenate([window[:, None] * np.cos(angle), -window[:, None] * np.sin(angle)], axis=1)
    return kernel.astype(np.float32)[:, None, :]


def stft_power(waveform, n_fft: int, hop_length: int, portable: bool = False, window: np.ndarray | None = None):
    """Power ``|X|^2`` of the windowed STFT with centered, reflect-padded frames:
    ``[batch, samples]`` -> ``[batch, 1 + samples // hop_length, n_fft // 2 + 1]``.

    ``window`` is ``n_fft`` samples (a shorter window zero-padded on both sides, as PyTorch places
    it); the default is a periodic Hann window. ``portable`` computes the same with a strided
    convolution by the DFT basis instead of an FFT: exported formats (ONNX, LiteRT, OpenVINO) run it
    with their plain convolution kernels, where TensorFlow's complex FFT does not convert. It equals
    the FFT's to float32 rounding (a test checks it) and costs ``2 * n_fft`` multiply-adds per bin
    and frame instead of the FFT's ``log2(n_fft)``.
    """
    if not portable:
        shape = "hann" if window is None else ops.convert_to_tensor(np.asarray(window, np.float32))
        real, imag = ops.stft(waveform, sequence_length=n_fft, sequence_stride=hop_length, fft_length=n_fft,
                              window=shape, center=True)
        return real * real + imag * imag
    padded = ops.pad(waveform, ((0, 0), (n_fft // 2, n_fft // 2)), mode="reflect")
    parts = ops.conv(padded[..., None], ops.convert_to_tensor(dft_kernel(n_fft, window)), strides=hop_length)
    bins = n_fft // 2 + 1
    return ops.square(parts[..., :bins]) + ops.square(parts[..., bins:])


@keras.saving.register_keras_serializable(package="gtzan")
class RandomTimeShift(keras.layers.Layer):
    """Rolls each waveform in time by a random offset, in training only.

    The offset of each example is drawn uniformly from
    ``[-max_fraction * samples, max_fraction * samples]``. The waveform is *rolled*
    (samples pushed off one end come back at the other), so the length and the content
    are kept and nothing is zero-padded; at inference the layer is the identity.

    Args:
        max_fraction: Largest shift as a fraction of the window, in [0, 1) (the study
            used 0.15 and 0.20). 0 disables the layer.
        seed: Optional seed of the layer's random generator.
        **kwargs: Base layer arguments.
    """

    def __init__(self, max_fraction: float = 0.0, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= max_fraction < 1.0:
            raise ValueError(f"max_fraction must be in [0, 1). Received: max_fraction={max_fraction!r}")
        self.max_fraction = float(max_fraction)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = False

    def call(self, inputs, training=None):
        if not training or self.max_fraction == 0.0:
            return inputs
        length = ops.shape(inputs)[1]
        limit = ops.cast(ops.cast(length, "float32") * self.max_fraction, "int32")
        shifts = keras.random.randint(
            (ops.shape(inputs)[0], 1), -limit, limit + 1, seed=self.seed_generator, dtype="int32"
        )
        positions = ops.expand_dims(ops.arange(length, dtype="int32"), 0)
        return ops.take_along_axis(inputs, ops.mod(positions - shifts, length), axis=1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "max_fraction": self.max_fraction, "seed": self.seed}


@keras.saving.register_keras_serializable(package="gtzan")
class LogMelSpectrogram(keras.layers.Layer):
    """Waveform ``[batch, samples]`` -> normalized log-mel ``[batch, frames, n_mels]``.

    ``keras.layers.MelSpectrogram``'s mel power (Hann-windowed STFT with centered, reflect-padded
    frames, HTK mel bands, ``power_to_db=False``), then
    ``db = 10 * log10(max(mel, 1e-10) / ref)`` with ``ref = (n_fft / 4) ** 2``, the power a
    full-scale sine puts in its bin, so 0 dB is full scale. The output is
    ``(db - db_offset) / db_scale``: a fixed affine map, so the result of one example never
    depends on the other examples of its batch (unlike the library layer's ``top_db`` clip,
    which takes the maximum over the whole batch, or batch statistics), at training and at
    inference alike. Built from ``keras.ops`` only, it runs on every Keras backend.

    Args:
        sample_rate: Sample rate of the input.
        n_fft: FFT and window length in samples.
        hop_length: Samples between frames.
        n_mels: Number of mel bands.
        f_min: Lowest band edge in Hz.
        f_max: Highest band edge in Hz (default: half the sample rate).
        db_offset: Subtracted from the dB values (music sits around -40 dB per band).
        db_scale: Divides the dB values after the offset.
        **kwargs: Base layer arguments.
    """

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE,
        n_fft: int = 1024,
        hop_length: int = 512,
        n_mels: int = 64,
        f_min: float = 20.0,
        f_max: float | None = None,
        db_offset: float = -40.0,
        db_scale: float = 20.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("n_fft", n_fft), ("hop_length", hop_length), ("n_mels", n_mels)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
        if db_scale <= 0:
            raise ValueError(f"db_scale must be positive. Received: db_scale={db_scale!r}")
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.n_mels = int(n_mels)
        self.f_min = float(f_min)
        self.f_max = float(f_max) if f_max is not None else None
        self.db_offset = float(db_offset)
        self.db_scale = float(db_scale)
        self._log_ref = 20.0 * math.log10(self.n_fft / 4)
        self.mel = keras.layers.MelSpectrogram(
            fft_length=self.n_fft, sequence_stride=self.hop_length, sequence_length=self.n_fft, window="hann",
            sampling_rate=self.sample_rate, num_mel_bins=self.n_mels, min_freq=self.f_min, max_freq=self.f_max,
            power_to_db=False, mag_exp=2.0, dtype="float32", name="mel_power",
        )
        self._portable_bank = None

    def build(self, input_shape):
        self.mel.build(input_shape)

    @property
    def portable(self) -> bool:
        """Whether the STFT is computed as a convolution by the DFT basis (:func:`stft_power`), as
        ``serving.export`` sets while exporting to formats without an FFT."""
        return self._portable_bank is not None

    @portable.setter
    def portable(self, value: bool) -> None:
        # The library layer's own filter bank, taken out once as a constant for the exported graph.
        self._portable_bank = ops.convert_to_numpy(self.mel.linear_to_mel_weight_matrix(
            num_mel_bins=self.n_mels, num_spectrogram_bins=self.n_fft // 2 + 1, sampling_rate=self.sample_rate,
            lower_edge_hertz=self.f_min, upper_edge_hertz=self.mel.max_freq,
        )) if value else None

    def power_spectrogram(self, inputs):
        """STFT power ``|X|^2``, ``[batch, frames, n_fft // 2 + 1]`` (:func:`stft_power`)."""
        return stft_power(inputs, self.n_fft, self.hop_length, self.portable)

    def mel_power(self, inputs):
        """Mel power ``[batch, frames, n_mels]``."""
        if self.portable:
            return ops.matmul(self.power_spectrogram(inputs), self._portable_bank)
        return ops.swapaxes(self.mel(inputs), 1, 2)  # the library layer puts the bands first

    def call(self, inputs):
        db = 10.0 * ops.log10(ops.maximum(self.mel_power(inputs), 1e-10)) - self._log_ref
        return (db - self.db_offset) / self.db_scale

    def compute_output_shape(self, input_shape):
        frames = None if input_shape[1] is None else 1 + input_shape[1] // self.hop_length
        return (input_shape[0], frames, self.n_mels)

    def get_config(self):
        return {
            **super().get_config(),
            "sample_rate": self.sample_rate,
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "n_mels": self.n_mels,
            "f_min": self.f_min,
            "f_max": self.f_max,
            "db_offset": self.db_offset,
            "db_scale": self.db_scale,
        }


@keras.saving.register_keras_serializable(package="gtzan")
class SpecAugment(keras.layers.Layer):
    """SpecAugment masks (Park et al., 2019) on a spectrogram, in training only.

    Each example gets ``masks`` frequency masks of up to ``freq_width`` bands and ``masks``
    time masks of up to ``time_width`` frames, at random places; masked cells are set to the
    example's mean value, so the mask adds no new level. At inference the layer is the identity.
    It makes a model rely on no single band or moment of a window: on a few hundred training
    clips it is one of the cheapest ways to generalize.

    Args:
        freq_width: Largest frequency-mask width in bands; 0 disables frequency masks.
        time_width: Largest time-mask width in frames; 0 disables time masks.
        masks: Masks of each kind per example.
        seed: Optional seed of the layer's random generator.
        **kwargs: Base layer arguments.
    """

    def __init__(self, freq_width: int = 8, time_width: int = 16, masks: int = 2, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("freq_width", freq_width), ("time_width", time_width), ("masks", masks)):
            if int(value) != value or value < 0:
                raise ValueError(f"{name} must be a non-negative integer. Received: {name}={value!r}")
        self.freq_width = int(freq_width)
        self.time_width = int(time_width)
        self.masks = int(masks)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _mask(self, batch, size, width):
        """``[batch, size]`` booleans, true inside ``masks`` random spans of up to ``width``."""
        positions = ops.arange(size, dtype="int32")[None, :]
        masked = ops.zeros((batch, size), dtype="bool")
        for _ in range(self.masks):
            widths = keras.random.randint((batch, 1), 0, width + 1, seed=self.seed_generator, dtype="int32")
            # A start drawn uniformly from the places where the whole span fits.
            room = ops.cast(ops.maximum(size - widths, 0) + 1, "float32")
            draw = keras.random.uniform((batch, 1), seed=self.seed_generator)
            starts = ops.minimum(ops.cast(draw * room, "int32"), size - 1)
            masked = ops.logical_or(masked, ops.logical_and(positions >= starts, positions < starts + widths))
        return masked

    def call(self, inputs, training=None):
        if not training or self.masks == 0 or (self.freq_width == 0 and self.time_width == 0):
            return inputs
        batch, frames, bands = ops.shape(inputs)[0], ops.shape(inputs)[1], ops.shape(inputs)[2]
        masked = ops.zeros_like(inputs, dtype="bool")
        if self.time_width:
            masked = ops.logical_or(masked, self._mask(batch, frames, self.time_width)[:, :, None])
        if self.freq_width:
            masked = ops.logical_or(masked, self._mask(batch, bands, self.freq_width)[:, None, :])
        fill = ops.mean(inputs, axis=(1, 2), keepdims=True)
        return ops.where(masked, fill, inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "freq_width": self.freq_width, "time_width": self.time_width,
                "masks": self.masks, "seed": self.seed}


@keras.saving.register_keras_serializable(package="gtzan")
class RecordingConditions(keras.layers.Layer):
    """Random recording conditions on the waveform, in training only.

    Real audio reaches a classifier through many chains: 16-kHz or low-bitrate material has no
    band above 8 kHz (or less), microphones and mixes tilt the spectrum, levels differ, and
    there is noise. A model trained on clean full-band GTZAN clips learns to rely on what those
    chains remove. Each window independently gets, each with ``probability``:

    * a band limit: a low-pass at a log-uniform cut-off from 3 to 11 kHz (a 10 %-wide cosine
      roll-off), as resampling through a lower rate or a lossy codec does;
    * an EQ tilt: a gain linear in log-frequency, from -12 to +6 dB at 11 kHz relative to 1 kHz;
    * a gain from -12 to +6 dB;
    * white noise at a signal-to-noise ratio from 15 to 40 dB.

    The filters are applied in the frequency domain of the whole window (one real FFT). At
    inference the layer is the identity.

    Args:
        probability: Chance that each effect is applied to a window, in [0, 1]; 0 disables the layer.
        sample_rate: Sample rate of the input.
        seed: Optional seed of the layer's random generator.
        **kwargs: Base layer arguments.
    """

    CUTOFF_HZ = (3000.0, 11000.0)
    TILT_DB = (-12.0, 6.0)
    GAIN_DB = (-12.0, 6.0)
    SNR_DB = (15.0, 40.0)

    def __init__(self, probability: float = 0.5, sample_rate: int = SAMPLE_RATE, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1]. Received: probability={probability!r}")
        self.probability = float(probability)
        self.sample_rate = int(sample_rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _draw(self, batch, low, high, log=False):
        """``[batch, 1]`` values uniform in ``[low, high]`` (log-uniform if ``log``), and whether each applies."""
        u = keras.random.uniform((batch, 1), seed=self.seed_generator)
        value = ops.exp(math.log(low) + u * math.log(high / low)) if log else low + u * (high - low)
        applies = keras.random.uniform((batch, 1), seed=self.seed_generator) < self.probability
        return value, applies

    def call(self, inputs, training=None):
        if not training or self.probability == 0.0:
            return inputs
        batch, length = ops.shape(inputs)[0], ops.shape(inputs)[1]
        real, imag = ops.rfft(inputs)
        # Bin k of an n-point FFT is at k * rate / n (n may be known only when the graph runs).
        hz = ops.arange(ops.shape(real)[1], dtype="float32")[None, :] * (self.sample_rate / ops.cast(length, "float32"))
        cutoff, band_limited = self._draw(batch, *self.CUTOFF_HZ, log=True)
        # 1 below the cut-off, a half-cosine down to 0 over the next 10 %.
        ramp = ops.clip((hz - cutoff) / (0.1 * cutoff), 0.0, 1.0)
        low_pass = ops.where(band_limited, 0.5 * (1.0 + ops.cos(math.pi * ramp)), 1.0)
        tilt, tilted = self._draw(batch, *self.TILT_DB)
        octaves = ops.log2(ops.maximum(hz, 20.0) / 1000.0) / math.log2(11000.0 / 1000.0)
        tilt_gain = ops.where(tilted, ops.power(10.0, tilt * octaves / 20.0), 1.0)
        response = low_pass * tilt_gain
        x = ops.irfft((real * response, imag * response), fft_length=length)
        gain, gained = self._draw(batch, *self.GAIN_DB)
        x = x * ops.where(gained, ops.power(10.0, gain / 20.0), 1.0)
        snr, noisy = self._draw(batch, *self.SNR_DB)
        rms = ops.sqrt(ops.mean(ops.square(x), axis=1, keepdims=True) + 1e-12)
        noise = keras.random.normal(ops.shape(x), seed=self.seed_generator) * rms * ops.power(10.0, -snr / 20.0)
        return x + ops.where(noisy, noise, 0.0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "probability": self.probability, "sample_rate": self.sample_rate,
                "seed": self.seed}


def resampler_response(hz: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """Amplitude response at ``hz`` of resampling ``rate`` -> ``target_rate`` with soxr's high-quality
    filter (1 in the pass band, 0 from ``target_rate / 2`` on), read off the resampled impulse."""
    impulse = np.zeros(8192)
    impulse[4096] = 1.0
    response = np.abs(np.fft.rfft(soxr.resample(impulse, rate, target_rate, quality="HQ"), 1 << 16))
    at = np.fft.rfftfreq(1 << 16, 1.0 / target_rate)
    response /= response[at < target_rate / 4].mean()  # the pass band's gain is 1
    return np.interp(hz, at, response, right=0.0)


def slaney_mel_filters(sample_rate: float, n_fft: int, n_mels: int, f_min: float = 0.0,
                       f_max: float | None = None) -> np.ndarray:
    """Triangular mel filters ``[n_fft // 2 + 1, n_mels]`` on the Slaney mel scale (linear below
    1 kHz, logarithmic above), each normalized to unit area in Hz: the filter bank of
    ``librosa.filters.mel`` (``htk=False, norm="slaney"``), which musicnn's input was computed with.
    Defined in Hz, so the same bands come out at any sample rate and FFT length."""
    f_max = sample_rate / 2 if f_max is None else f_max
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, log_step = min_log_hz / f_sp, math.log(6.4) / 27.0

    def to_mel(hz):
        hz = np.asarray(hz, np.float64)
        return np.where(hz >= min_log_hz, min_log_mel + np.log(np.maximum(hz, 1e-10) / min_log_hz) / log_step, hz / f_sp)

    def to_hz(mel):
        mel = np.asarray(mel, np.float64)
        return np.where(mel >= min_log_mel, min_log_hz * np.exp(log_step * (mel - min_log_mel)), f_sp * mel)

    edges = to_hz(np.linspace(to_mel(f_min), to_mel(f_max), n_mels + 2))
    bins = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    rising = (bins[None, :] - edges[:-2, None]) / np.diff(edges)[:-1, None]
    falling = (edges[2:, None] - bins[None, :]) / np.diff(edges)[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.T.astype(np.float32)


@keras.saving.register_keras_serializable(package="gtzan")
class MusicnnLogMel(keras.layers.Layer):
    """Waveform ``[batch, samples]`` -> musicnn's input ``[batch, frames, 96]``, in the graph.

    musicnn was trained on ``log10(1 + 10000 * mel)`` of a 96-band Slaney mel power spectrogram
    of 16-kHz audio (FFT 512, hop 256: 32-ms windows every 16 ms, bands up to 8 kHz). This layer
    computes the same at the input's own rate, without resampling: a Hann-windowed STFT with the
    same window and hop in seconds (706 and 353 samples at 22050 Hz), the same bands in Hz (up to
    8 kHz, so nothing above it reaches the model), and the power scaled by ``(512 / n_fft) ** 2``
    so a band holds the energy it holds at 16 kHz. Audio resampled to 16 kHz has lost the top of
    that band to the resampler's anti-aliasing filter (from about 7.4 kHz; -6 dB at 7.65 kHz):
    musicnn's top bands were trained on that, so the filter bank carries the same roll-off (the
    response of soxr's high-quality 22050 -> 16000 Hz filter, the resampler librosa uses). With
    it, the tags of real GTZAN excerpts correlate 0.998 with the reference pre-processing's
    (0.987 without). The compression is computed in float32 (the authors' extractor casts to
    float16 first, which overflows in loud bins).

    Args:
        sample_rate: Sample rate of the input.
        **kwargs: Base layer arguments.
    """

    MEL_RATE, MEL_FFT, MEL_HOP, N_MELS = 16000, 512, 256, 96

    def __init__(self, sample_rate: int = SAMPLE_RATE, **kwargs):
        super().__init__(**kwargs)
        self.sample_rate = int(sample_rate)
        self.n_fft = int(round(self.MEL_FFT * self.sample_rate / self.MEL_RATE))
        self.hop_length = int(round(self.MEL_HOP * self.sample_rate / self.MEL_RATE))
        hz = np.fft.rfftfreq(self.n_fft, 1.0 / self.sample_rate)
        rolloff = resampler_response(hz, self.sample_rate, self.MEL_RATE) ** 2
        self._filters = (slaney_mel_filters(self.sample_rate, self.n_fft, self.N_MELS, 0.0, self.MEL_RATE / 2)
                         * rolloff[:, None]).astype(np.float32)
        self._scale = (self.MEL_FFT / self.n_fft) ** 2
        self.portable = False  # set while exporting to formats without an FFT (serving.export)

    def call(self, waveform):
        power = stft_power(waveform, self.n_fft, self.hop_length, self.portable)
        mel = ops.matmul(power, ops.convert_to_tensor(self._filters)) * self._scale
        return ops.log10(1.0 + 10000.0 * mel)

    def compute_output_shape(self, input_shape):
        frames = None if input_shape[1] is None else 1 + input_shape[1] // self.hop_length
        return (input_shape[0], frames, self.N_MELS)

    def get_config(self):
        return {**super().get_config(), "sample_rate": self.sample_rate}


def kaldi_mel_filters(sample_rate: float, n_fft: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """Kaldi's triangular mel filters ``[n_fft // 2 + 1, n_mels]``: ``mel = 1127 ln(1 + f / 700)``,
    triangles equally spaced in mel from ``f_min`` to ``f_max``, not normalized, over the ``n_fft // 2``
    bins below Nyquist (the Nyquist bin gets weight 0), as ``torchaudio.compliance.kaldi.get_mel_banks``
    makes them (EfficientAT's front end)."""
    def to_mel(hz):
        return 1127.0 * np.log(1.0 + np.asarray(hz, np.float64) / 700.0)

    low, high = to_mel(f_min), to_mel(f_max)
    delta = (high - low) / (n_mels + 1)
    left = low + delta * np.arange(n_mels)[:, None]
    center, right = left + delta, left + 2 * delta
    mel = to_mel(sample_rate / n_fft * np.arange(n_fft // 2))[None, :]
    weights = np.maximum(0.0, np.minimum((mel - left) / (center - left), (right - mel) / (right - center)))
    return np.concatenate([weights, np.zeros((n_mels, 1))], axis=1).T.astype(np.float32)


@keras.saving.register_keras_serializable(package="gtzan")
class EfficientATLogMel(keras.layers.Layer):
    """Waveform ``[batch, samples]`` at 32 kHz -> EfficientAT's input ``[batch, frames, 128]``, in the graph.

    The front end the EfficientAT MobileNets were trained with, at inference: pre-emphasis
    ``y[n] = x[n + 1] - 0.97 x[n]`` (one sample shorter), the STFT of 1024-sample frames every 320
    samples with a symmetric 800-sample Hann window in their middle (centered, reflect-padded
    frames), power, 128 Kaldi-style mel bands from 0 to 15 kHz, ``log(mel + 1e-5)``, then
    ``(x + 4.5) / 5``. Frames are ``1 + (samples - 1) // 320``.

    Args:
        **kwargs: Base layer arguments.
    """

    SAMPLE_RATE, N_FFT, WINDOW, HOP, N_MELS, F_MAX, PREEMPHASIS = 32000, 1024, 800, 320, 128, 15000.0, 0.97

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        side = (self.N_FFT - self.WINDOW) // 2
        hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(self.WINDOW) / (self.WINDOW - 1))  # symmetric
        self._window = np.pad(hann, (side, self.N_FFT - self.WINDOW - side)).astype(np.float32)
        self._filters = kaldi_mel_filters(self.SAMPLE_RATE, self.N_FFT, self.N_MELS, 0.0, self.F_MAX)
        self.portable = False  # set while exporting to formats without an FFT (serving.export)

    def call(self, waveform):
        emphasized = waveform[:, 1:] - self.PREEMPHASIS * waveform[:, :-1]
        power = stft_power(emphasized, self.N_FFT, self.HOP, self.portable, self._window)
        mel = ops.matmul(power, ops.convert_to_tensor(self._filters))
        return (ops.log(mel + 1e-5) + 4.5) / 5.0

    def compute_output_shape(self, input_shape):
        frames = None if input_shape[1] is None else 1 + (input_shape[1] - 1) // self.HOP
        return (input_shape[0], frames, self.N_MELS)


@keras.saving.register_keras_serializable(package="gtzan")
class PannsLogMel(keras.layers.Layer):
    """Waveform ``[batch, samples]`` -> the log-mel the PANNs CNNs take, ``[batch, frames, n_mels]``.

    As ``torchlibrosa`` computes it for PANNs: the STFT with a periodic Hann window of ``n_fft``
    samples every ``hop_length`` (centered, reflect-padded frames), power, ``librosa``'s Slaney mel
    filters from ``f_min`` to ``f_max`` (:func:`slaney_mel_filters`), then
    ``10 log10(max(mel, 1e-10))``. CNN14 at 32 kHz: 1024, 320, 64 bands, 50 Hz to 14 kHz; its
    16-kHz variant: 512, 160, 64 bands, 50 Hz to 8 kHz.

    Args:
        sample_rate: The input's sample rate.
        n_fft: FFT and window length in samples.
        hop_length: Samples between frames.
        n_mels: Mel bands.
        f_min: Lowest band edge in Hz.
        f_max: Highest band edge in Hz.
        **kwargs: Base layer arguments.
    """

    def __init__(self, sample_rate: int = 32000, n_fft: int = 1024, hop_length: int = 320, n_mels: int = 64,
                 f_min: float = 50.0, f_max: float = 14000.0, **kwargs):
        super().__init__(**kwargs)
        self.sample_rate, self.n_fft, self.hop_length, self.n_mels = int(sample_rate), int(n_fft), int(hop_length), int(n_mels)
        self.f_min, self.f_max = float(f_min), float(f_max)
        self._filters = slaney_mel_filters(self.sample_rate, self.n_fft, self.n_mels, self.f_min, self.f_max)
        self.portable = False  # set while exporting to formats without an FFT (serving.export)

    def call(self, waveform):
        power = stft_power(waveform, self.n_fft, self.hop_length, self.portable)
        mel = ops.matmul(power, ops.convert_to_tensor(self._filters))
        return 10.0 * ops.log10(ops.maximum(mel, 1e-10))

    def compute_output_shape(self, input_shape):
        frames = None if input_shape[1] is None else 1 + input_shape[1] // self.hop_length
        return (input_shape[0], frames, self.n_mels)

    def get_config(self):
        return {**super().get_config(), "sample_rate": self.sample_rate, "n_fft": self.n_fft,
                "hop_length": self.hop_length, "n_mels": self.n_mels, "f_min": self.f_min, "f_max": self.f_max}


def resampling_kernel(source_rate: int, target_rate: int, half_width: int = 64, rolloff: float = 0.95,
                      beta: float = 12.0) -> tuple[np.ndarray, int, int]:
    """A polyphase resampler as one strided convolution: ``(kernel [K, 1, up], up, down)``.

    ``up / down`` is ``target_rate / source_rate`` in lowest terms. Output sample ``q * up + r`` is the
    input at time ``(q * up + r) * down / up`` (in input samples), interpolated by a Kaiser-windowed sinc
    low-pass whose cut-off is ``rolloff`` times the lower rate's Nyquist frequency, ``half_width``
    zero crossings on each side (at the input's rate when upsampling, at the output's when
    downsampling). Column ``r`` of the kernel holds that phase's taps at their place in a stretch of
    ``K = down - 1 + 2 * reach`` input samples, so a convolution with stride ``down`` (after padding
    the input by ``reach - 1`` on the left) computes ``up`` output samples per step.
    """
    divisor = math.gcd(int(source_rate), int(target_rate))
    up, down = int(target_rate) // divisor, int(source_rate) // divisor
    # The cut-off in cycles per input sample, and the filter's reach in input samples.
    cutoff = 0.5 * rolloff * min(1.0, up / down)
    reach = int(math.ceil(half_width * max(1.0, down / up)))
    kernel = np.zeros((down - 1 + 2 * reach, 1, up))
    for phase in range(up):
        position = phase * down / up
        base = int(math.floor(position))
        taps = np.arange(-reach + 1, reach + 1)
        distance = position - base - taps  # from each tap to the output's time, in input samples
        window = np.i0(beta * np.sqrt(np.clip(1 - (distance / reach) ** 2, 0, None))) / np.i0(beta)
        kernel[base + taps + reach - 1, 0, phase] = 2 * cutoff * np.sinc(2 * cutoff * distance) * window
    return kernel.astype(np.float32), up, down


@keras.saving.register_keras_serializable(package="gtzan")
class Resample(keras.layers.Layer):
    """Waveform ``[batch, samples]`` at ``source_rate`` -> ``[batch, ceil(samples * target / source)]`` at
    ``target_rate``, in the graph: a polyphase windowed-sinc resampler (:func:`resampling_kernel`) run as
    one strided convolution, so it runs on every backend and converts to every export format.

    The pretrained backbones trained at 32 kHz (EfficientAT, CNN14) or 16 kHz take the toolkit's
    22050-Hz audio through it at the front of the model, so the model (and its export) still takes
    22050-Hz audio and the front end after it is exactly the one the weights were trained with.
    Content above the lower rate's Nyquist frequency is removed, as a resampler does (the
    22050-Hz audio has none above 11025 Hz to begin with).

    Args:
        source_rate: The input's sample rate.
        target_rate: The output's sample rate.
        **kwargs: Base layer arguments.
    """

    def __init__(self, source_rate: int = SAMPLE_RATE, target_rate: int = 32000, **kwargs):
        super().__init__(**kwargs)
        if int(source_rate) < 1 or int(target_rate) < 1:
            raise ValueError(f"rates must be positive. Received: {source_rate}, {target_rate}")
        self.source_rate, self.target_rate = int(source_rate), int(target_rate)
        self._kernel, self.up, self.down = resampling_kernel(self.source_rate, self.target_rate)
        self._reach = (self._kernel.shape[0] - self.down + 1) // 2

    def output_length(self, samples):
        """Output samples for ``samples`` input samples (an integer, or a tensor in a graph)."""
        return (samples * self.up + self.down - 1) // self.down

    def call(self, waveform):
        # Python integers where the length is static (always under JAX); tensors in a TensorFlow graph
        # traced for recordings of any length.
        samples = waveform.shape[1] if waveform.shape[1] is not None else ops.shape(waveform)[1]
        length = self.output_length(samples)
        steps = (length + self.up - 1) // self.up
        right = (steps - 1) * self.down + self._kernel.shape[0] - (samples + self._reach - 1)
        right = max(0, right) if isinstance(right, int) else ops.maximum(0, right)
        padded = ops.pad(waveform, ((0, 0), (self._reach - 1, right)))[..., None]
        phases = ops.conv(padded, ops.convert_to_tensor(self._kernel), strides=self.down)  # [batch, steps, up]
        return ops.reshape(phases, (-1, steps * self.up))[:, :length]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], None if input_shape[1] is None else self.output_length(input_shape[1]))

    def get_config(self):
        return {**super().get_config(), "source_rate": self.source_rate, "target_rate": self.target_rate}
