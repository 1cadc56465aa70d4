// BuildDescription: which dist-trainer this is — version, source revision and the CPU level it was
// built for — as `--version` prints it and config.json and checkpoints record it.
import BuildInfo
import CoreSupport

enum BuildDescription {
    static var revision: String { String(cString: dist_trainer_revision()) }
    static var targetCPU: String { String(cString: dist_trainer_target_cpu()) }
    /// "0.7.0 (revision 79ce0a3f1c2d, built for CPU skylake-avx512)".
    static var full: String { "\(DistTrainerVersion.number) (revision \(revision), built for CPU \(targetCPU))" }
}
