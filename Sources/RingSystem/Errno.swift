import Glibc

/// The symbolic name of the errno values the data plane reports.
package func errnoName(_ value: Int32) -> String {
    switch value {
    case ECONNREFUSED: "ECONNREFUSED"
    case ECONNRESET: "ECONNRESET"
    case ETIMEDOUT: "ETIMEDOUT"
    case EHOSTUNREACH: "EHOSTUNREACH"
    case ENETUNREACH: "ENETUNREACH"
    case EADDRNOTAVAIL: "EADDRNOTAVAIL"
    case EMFILE: "EMFILE"
    case ENFILE: "ENFILE"
    case ENOBUFS: "ENOBUFS"
    case ENOMEM: "ENOMEM"
    case EPIPE: "EPIPE"
    case ECANCELED: "ECANCELED"
    case ECONNABORTED: "ECONNABORTED"
    default: "errno \(value)"
    }
}
