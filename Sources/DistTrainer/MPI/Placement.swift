// Placement: which cores this rank may run on, as mpirun's binding, Slurm or taskset set them —
// what the default thread count per rank is derived from.
import Foundation

/// The number of CPUs this process may run on (its affinity mask, as mpirun's binding or taskset
/// set it), from /proc/self/status on Linux; all cores elsewhere.
func allowedCPUCount() -> Int {
    let all = ProcessInfo.processInfo.activeProcessorCount
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") }) else { return all }
    // e.g. "0-3,8,10-11"
    var count = 0
    for range in line.dropFirst("Cpus_allowed_list:".count).trimmingCharacters(in: .whitespaces).split(separator: ",") {
        let ends = range.split(separator: "-").compactMap { Int($0) }
        guard let first = ends.first else { return all }
        count += (ends.last ?? first) - first + 1
    }
    return count > 0 ? count : all
}
