import Foundation
import Glibc

/// nginx as a test's real peer, with its stream module (or its http module): started in a folder of its own
/// with the servers the test writes; `stop()` ends it (SIGTERM) and removes the folder.
final class StreamNginx {
    /// The nginx block the servers go in.
    enum Module {
        case stream
        /// Its temporary files and access log go in the test's folder, not Debian's /var paths.
        case http
    }

    private let process: BuiltBinary.Running
    private let folder: String

    /// `servers`: the `server { ... }` blocks inside `stream { }` (or `http { }`).
    init(servers: String, module: Module = .stream) throws {
        let nginx = try requireTool(["/usr/sbin/nginx"], install: "apt-get install nginx libnginx-mod-stream")
        if module == .stream {
            try requireFile("/usr/lib/nginx/modules/ngx_stream_module.so", install: "apt-get install libnginx-mod-stream")
        }
        let folder = NSTemporaryDirectory() + "ringproxy-nginx-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let block = switch module {
        case .stream:
            "stream {\n\(servers)\n}"
        case .http:
            """
            http {
            access_log off;
            client_body_temp_path \(folder)/body;
            proxy_temp_path \(folder)/proxy;
            fastcgi_temp_path \(folder)/fastcgi;
            uwsgi_temp_path \(folder)/uwsgi;
            scgi_temp_path \(folder)/scgi;
            \(servers)
            }
            """
        }
        do {
            try """
                \(module == .stream ? "load_module /usr/lib/nginx/modules/ngx_stream_module.so;" : "")
                daemon off;
                master_process off;
                pid \(folder)/nginx.pid;
                error_log \(folder)/error.log;
                events { worker_connections 64; }
                \(block)
                """.write(toFile: "\(folder)/nginx.conf", atomically: true, encoding: .utf8)
            process = try BuiltBinary.Running(executable: nginx, arguments: [nginx, "-c", "\(folder)/nginx.conf", "-p", folder])
        } catch {
            try? FileManager.default.removeItem(atPath: folder)
            throw error
        }
        self.folder = folder
    }

    func stop() {
        process.signal(SIGTERM)
        _ = process.finish()
        try? FileManager.default.removeItem(atPath: folder)
    }
}
