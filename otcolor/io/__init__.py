r"""Files in and out: image codecs (with a 16-bit PNG codec), the output policy and atomic
writes that every writer uses.

=================  ===========================================================================
module             job
=================  ===========================================================================
``formats``        which formats are read and written, EXIF tags, orientation, error hints
``decode``         :func:`load_image`, :func:`load_mask`: safe decoding into float RGB
``encode``         :func:`save_image`: 8/16-bit output with the source's metadata and alpha
``png16``          the 16-bit PNG codec Pillow lacks
``files``          :func:`open_regular` (every read), :func:`check_output_path`,
                   :func:`write_atomically`
``commit``         :func:`finish_file`, :func:`outputs_together`: when outputs are committed
=================  ===========================================================================

Map files and LUTs are :mod:`otcolor.io.mapfile` and :mod:`otcolor.io.lut` (import them by name).
"""

from __future__ import annotations

__all__ = [
    "ALLOWED_FORMATS",
    "DEFAULT_MAX_PIXELS",
    "OUTPUT_FORMATS",
    "LoadedImage",
    "all_finite",
    "check_distinct_outputs",
    "check_output_path",
    "commit_file",
    "finish_file",
    "load_image",
    "load_mask",
    "new_file_mode",
    "open_regular",
    "outputs_together",
    "read_regular",
    "save_image",
    "tmp_prefix",
    "unit_float",
    "write_atomically",
    "writes_8bit_as_is",
]

from .decode import DEFAULT_MAX_PIXELS, LoadedImage, load_image, load_mask, unit_float
from .encode import all_finite, save_image, writes_8bit_as_is
from .files import (
    check_distinct_outputs,
    check_output_path,
    commit_file,
    finish_file,
    new_file_mode,
    open_regular,
    outputs_together,
    read_regular,
    tmp_prefix,
    write_atomically,
)
from .formats import ALLOWED_FORMATS, OUTPUT_FORMATS
