"""`dl-vision`: the vision app's command line (the shared CLI over this app's tasks), plus
`generate` (images from a synthesize run) and `faces` (enrol, verify, identify)."""

from shared.cli import AppCommand, app_main


def _generate_arguments(parser):
    parser.add_argument("--label", default=None,
                        help="a class name (e.g. Sneaker) or index; default: every class in turn")
    parser.add_argument("--count", type=int, default=64, help="how many images (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    parser.add_argument("--out", required=True, help="the grid PNG to write")


def _generate(run, task, cfg, info, args):
    from apps.vision.synthesis import generate_command

    generate_command(run, task, info, args)


def _faces_arguments(parser):
    actions = parser.add_subparsers(dest="action", required=True)
    for name, help in (("enrol", "store a person's template (the mean of their photos' embeddings)"),
                       ("verify", "is this photo the named person? (similarity and decision)"),
                       ("identify", "who in the gallery is this photo? (best match, or unknown)")):
        p = actions.add_parser(name, help=help)
        p.add_argument("run_dir")
        p.add_argument("images", nargs="+")
        p.add_argument("--gallery", default=None, help="the gallery JSON file (default: gallery.json in the run)")
        p.add_argument("--json", action="store_true", help="print JSON lines")
        if name != "identify":
            p.add_argument("--name", required=True, help="the person's name")


def _faces(args):
    from apps.vision.faces import faces_command

    faces_command(args)


COMMANDS = (AppCommand("generate", "images of a label from a synthesize run, as a grid PNG",
                       _generate_arguments, _generate),
            AppCommand("faces", "enrol / verify / identify people with a faces run (a gallery of templates)",
                       _faces_arguments, _faces, on_run=False))


def main(argv=None):
    return app_main("vision", "apps.vision", argv, commands=COMMANDS)


if __name__ == "__main__":
    raise SystemExit(main())
