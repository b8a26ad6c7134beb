"""Options that say which planes and channels of a microscopy file a command reads (``gains.core.images``)."""

from __future__ import annotations

import argparse

from gains.cli_args import positive_float
from gains.core.images import DEFAULT_MAX_BYTES, PlaneChoice, parse_channels, parse_plane


def add_plane_options(p: argparse.ArgumentParser) -> None:
    """``--channels``, ``--z``, ``--t``, ``--axes`` and ``--max-input-gib`` on a subcommand's parser."""
    p.add_argument("--channels", help="channel indices the model sees, 1-3 of them: 2 -> grey, 0,2 -> (c0, c2, c0), "
                   "0,1,2 -> RGB order (default: all of 1-3 channels, alpha dropped)")
    p.add_argument("--z", default="all", help="z plane index, or all (default): every plane, named <stem>_z3...")
    p.add_argument("--t", default="all", help="time point index, or all (default): every one, named <stem>_t0...")
    p.add_argument("--axes", help="axis letters for files without usable metadata, one per axis, e.g. ZYX or CYX")
    p.add_argument("--max-input-gib", type=positive_float, default=DEFAULT_MAX_BYTES / (1 << 30),
                   help="refuse files whose header promises more decoded pixels than this (default %(default)g)")


def plane_choice(args: argparse.Namespace) -> PlaneChoice:
    """The ``PlaneChoice`` of parsed ``add_plane_options`` arguments.

    Raises:
        InputError: a malformed option value.
    """
    return PlaneChoice(channels=None if args.channels is None else parse_channels(args.channels),
                       z=parse_plane(args.z, "--z"), t=parse_plane(args.t, "--t"), axes=args.axes,
                       max_bytes=int(args.max_input_gib * (1 << 30)))
