//! A client of the daemon's live stream (`/api/v1/stream`, Server-Sent
//! Events over HTTP/1.1): `events --follow` reads it, and so do the tests.

use std::io::Write;

/// An open `/api/v1/stream` response, read a message at a time.
pub struct Stream {
    reader: std::io::BufReader<std::net::TcpStream>,
    chunked: bool,
    /// Bytes of the current chunk still to read.
    left: usize,
    pending: Vec<u8>,
}

impl Stream {
    /// Connects; Ok(Err((status, body))) when the daemon refused.
    pub fn open(
        addr: std::net::SocketAddr,
        token: Option<&str>,
        last: Option<&str>,
    ) -> std::io::Result<Result<Stream, (u16, String)>> {
        use std::io::{BufRead, Read};
        let mut tcp =
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5))?;
        // Keep-alive comments come every 15 s; silence past a minute is a
        // broken connection.
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let resume = last
            .map(|id| format!("Last-Event-ID: {id}\r\n"))
            .unwrap_or_default();
        write!(
            tcp,
            "GET /api/v1/stream HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{auth}{resume}\r\n"
        )?;
        let mut reader = std::io::BufReader::new(tcp);
        let mut status = String::new();
        reader.read_line(&mut status)?;
        let code: u16 = status
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let mut chunked = false;
        let mut length = None;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
                break;
            }
            let lower = header.to_ascii_lowercase();
            chunked |= lower.starts_with("transfer-encoding:") && lower.contains("chunked");
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse::<usize>().ok();
            }
        }
        if code != 200 {
            let mut body = vec![0; length.unwrap_or(0).min(1 << 16)];
            reader.read_exact(&mut body)?;
            return Ok(Err((code, String::from_utf8_lossy(&body).into_owned())));
        }
        Ok(Ok(Stream {
            reader,
            chunked,
            left: 0,
            pending: Vec::new(),
        }))
    }

    /// The next bytes of the body; None at its end.
    fn more(&mut self) -> Option<Vec<u8>> {
        use std::io::{BufRead, Read};
        if !self.chunked {
            let mut buf = vec![0; 4096];
            let n = self.reader.read(&mut buf).ok().filter(|n| *n > 0)?;
            buf.truncate(n);
            return Some(buf);
        }
        if self.left == 0 {
            let mut size = String::new();
            if self.reader.read_line(&mut size).ok()? == 0 {
                return None;
            }
            if size.trim().is_empty() {
                // The CRLF that ends the previous chunk.
                size.clear();
                self.reader.read_line(&mut size).ok()?;
            }
            self.left = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            if self.left == 0 {
                return None;
            }
        }
        let mut buf = vec![0; self.left.min(8192)];
        let n = self.reader.read(&mut buf).ok().filter(|n| *n > 0)?;
        buf.truncate(n);
        self.left -= n;
        Some(buf)
    }

    /// The next message: its event name, id and data; None when the stream
    /// ends or breaks.
    pub fn next_message(&mut self) -> Option<(String, Option<String>, String)> {
        loop {
            if let Some(end) = self.pending.windows(2).position(|w| w == b"\n\n") {
                let frame: Vec<u8> = self.pending.drain(..end + 2).collect();
                let text = String::from_utf8_lossy(&frame);
                let (mut kind, mut id, mut data) = (String::new(), None, String::new());
                for line in text.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        kind = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if !kind.is_empty() {
                    return Some((kind, id, data));
                }
                continue;
            }
            let bytes = self.more()?;
            self.pending.extend_from_slice(&bytes);
        }
    }
}
