import Foundation

/// Peak resident memory of a process and its children (nginx's master and workers), from /proc.
enum ProcessMemory {
    /// Sum of VmHWM over `pid` and its direct children, MB.
    static func peakMB(of pid: Int32) -> Double {
        var pids = [pid]
        if let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") {
            for task in tasks {
                let children = (try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/children", encoding: .utf8)) ?? ""
                pids += children.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            }
        }
        return pids.reduce(0) { $0 + field("VmHWM:", of: $1) }
    }

    /// A `kB` field of /proc/PID/status, MB.
    static func field(_ name: String, of pid: Int32) -> Double {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name) })
        else { return 0 }
        return (Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0) / 1024
    }
}
