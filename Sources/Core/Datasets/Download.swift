// Download: fetch a gzipped data set over HTTP, verify it, and write it atomically.
//
// For machines without the Debian package dataset-fashion-mnist. Each file is fetched whole into
// memory, inflated, and its uncompressed content checked against a known SHA-256 before anything
// touches the disk; a good file is then written to a temporary name in the target directory and
// renamed into place, so a crash or a bad mirror never leaves a half-written or wrong file where
// `FashionMNIST.load` would pick it up. Not a general downloader: no resume, no progress bar, no
// parallel fetches, no proxies, plain HTTP only (HTTPGet.swift). The CLI wiring lives in the
// DistTrainer target (Commands/DownloadCommand.swift); the logic is here so tests can drive it.
import CoreSupport
import Formats
import Foundation

// MARK: - Public API

/// Downloads `<mirror>/<name>.gz` for each file into `directory` (created if needed) as `<name>.gz`.
///
/// Each file's gzip stream is inflated in memory and the SHA-256 of the content compared with
/// `sha256`; only a match is written (temp file in `directory`, then rename). A file already in
/// `directory` (as `<name>.gz` or plain `<name>`) whose content has the right hash is skipped.
/// Stops at the first failure, having written only verified files.
///
/// - Parameters:
///   - mirror: base URL; with or without a trailing slash.
///   - directory: destination directory.
///   - files: base names (without .gz) and the SHA-256 of their uncompressed content, lowercase hex.
///   - log: receives one line per file.
/// - Throws: `TrainerError` naming the URL or file: HTTP error status, connection failure, not gzip,
///   truncated gzip, hash mismatch, or a file-system error.
public func downloadDataset(
    mirror: URL, into directory: String, files: [(name: String, sha256: String)], log: (String) -> Void
) throws {
    try makeDirectories(directory)
    for file in files {
        let fileName = file.name + ".gz"
        let destination = directory + "/" + fileName

        if let present = presentCopy(directory: directory, name: file.name, sha256: file.sha256) {
            log("\(fileName): \(present) already present with the right sha256, skipped")
            continue
        }

        let url = mirrorFileURL(mirror: mirror, file: fileName)
        let started = Date()
        let body = try httpGet(url)
        let source = "\(fileName) from \(url.absoluteString)"
        let content = try gunzip(body, name: source)
        let found = sha256Hex(content)
        guard found == file.sha256 else {
            throw TrainerError("\(source): sha256 of content \(found), expected \(file.sha256)")
        }
        try writeFileAtomically(destination, body)  // AtomicFile.swift: temp file, fsync, rename
        let seconds = Date().timeIntervalSince(started)
        log("\(fileName): \(body.count) bytes (\(content.count) uncompressed) from \(url.absoluteString) "
            + "in \(String(format: "%.1f", seconds)) s, sha256 ok -> \(destination)")
    }
}

// MARK: - Pieces

/// `<mirror>/<file>`, whether or not the mirror ends in a slash.
func mirrorFileURL(mirror: URL, file: String) -> URL {
    let base = mirror.absoluteString
    let joined = base.hasSuffix("/") ? base + file : base + "/" + file
    // Both parts are already valid URL text (base came from a URL, file names are plain ASCII).
    return URL(string: joined)!
}

/// The path of the copy of `name` that `FashionMNIST.load` would read (`<name>.gz` if it exists,
/// else `<name>`) if its content has the expected hash, or nil. Only that copy counts: a good plain
/// file next to a bad .gz must not make us skip, since the loader would pick the .gz. Unreadable or
/// corrupt copies count as absent and get replaced.
func presentCopy(directory: String, name: String, sha256: String) -> String? {
    let gz = directory + "/" + name + ".gz"
    let path = FileManager.default.fileExists(atPath: gz) ? gz : directory + "/" + name
    guard FileManager.default.fileExists(atPath: path), let bytes = try? readFile(path) else { return nil }
    let content = isGzip(bytes) ? (try? gunzip(bytes, name: path)) : bytes
    guard let content, sha256Hex(content) == sha256 else { return nil }
    return path
}
