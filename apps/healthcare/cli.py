"""`dl-health`: the healthcare app's command line (the shared CLI over this app's tasks), plus
`bench RUN` (a risk run against sklearn's logistic regression and gradient boosting) and
`segment RUN scan.nii.gz|DICOM_DIR --out mask.nii.gz` (an imaging run on a whole scan) and
`recommend RUN patients.csv` (a treatment run's recommendation per record)."""

from shared.cli import AppCommand, app_main


def _bench(run, task, cfg, info, args):
    from apps.healthcare.bench import bench_risk, bench_treatment

    return (bench_treatment if run.task == "treatment" else bench_risk)(run, task, cfg, info, args)


def _bench_arguments(parser):
    parser.add_argument("--realisations", type=int, default=0,
                        help="treatment runs: compare on the first N realisations (default: all of the run's)")


def _recommend(run, task, cfg, info, args):
    from apps.healthcare.treatment import recommend_command

    return recommend_command(run, task, cfg, info, args)


def _recommend_arguments(parser):
    parser.add_argument("patients", help="a CSV of records (header = the covariate columns)")
    parser.add_argument("--lower-is-better", action="store_true", help="the outcome is harmful (e.g. a risk score)")
    parser.add_argument("--json", action="store_true", help="print JSON lines")


def _segment(run, task, cfg, info, args):
    from apps.healthcare.imaging import segment_command

    return segment_command(run, task, cfg, info, args)


def _segment_arguments(parser):
    parser.add_argument("scan", help="a NIfTI file (.nii, .nii.gz) or a folder of one DICOM series")
    parser.add_argument("--out", required=True, help="the label volume to write (.nii.gz)")
    parser.add_argument("--window", default=None, help="clip intensities to CENTER,WIDTH first (CT windows)")


COMMANDS = (AppCommand("bench", "a risk or treatment run vs the tabular / causal state of the practice, same splits",
                       _bench_arguments, _bench),
            AppCommand("recommend", "each record's recommended treatment, expected benefit and interval",
                       _recommend_arguments, _recommend),
            AppCommand("segment", "write an imaging run's label volume for a NIfTI scan or DICOM series",
                       _segment_arguments, _segment))


def main(argv=None):
    return app_main("health", "apps.healthcare", argv, commands=COMMANDS)


if __name__ == "__main__":
    raise SystemExit(main())
