// Version: dist-trainer's version number, shown by `--version` and recorded in config.json and in
// every checkpoint (with the source revision the binary was built from).

public enum DistTrainerVersion {
    /// Semantic version of the program and its file formats' writer.
    public static let number = "0.8.0"
}
