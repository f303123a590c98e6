//! [`Context`]: a process's receiving side (its mailbox, `recv`, selective receive,
//! exit trapping) and the [`Recv`] future.

use super::*;

/// The receiving side of a process: its mailbox and its identity. Owned by the
/// process's future; handed to the function given to [`spawn`].
pub struct Context<M> {
    proc: Arc<Process<M>>,
    buf: Batch<M>,
    /// Clock tick at which the message being handled was received (0: none).
    started: u64,
    /// Messages left before the time slice is checked again.
    budget: u32,
    /// Clock reading when the current time slice began (valid while `slice_checks > 0`;
    /// a slice starts at the first check after the process was woken).
    slice_start: u64,
    /// Checks made in the current time slice (0: no slice started).
    slice_checks: u32,
}

/// Messages handed out between two checks of the time slice.
const BUDGET: u32 = 256;
/// A process that keeps finding messages yields once it has run more than this long
/// (by the 1 ms coarse clock, so 1-2 ms) since its slice started: at its first check
/// after it was woken (the BEAM's time slice is about a millisecond of reductions)...
const SLICE_NS: u64 = 1_000_000;
/// ... or once it has taken this many checks' worth of messages (`16 * 256 = 4096`,
/// near the BEAM's 4000 reductions), whichever comes first, so a lagging coarse clock
/// cannot stretch a slice.
const SLICE_CHECKS: u32 = 16;

impl<M: Send + 'static> Context<M> {
    pub(super) fn new(proc: Arc<Process<M>>) -> Self {
        Context {
            proc,
            buf: Batch::new(),
            started: 0,
            budget: BUDGET,
            slice_start: 0,
            slice_checks: 0,
        }
    }

    /// This process's pid.
    pub fn pid(&self) -> Pid {
        self.proc.core.pid
    }

    /// A typed handle to this process.
    pub fn handle(&self) -> Handle<M> {
        Handle {
            proc: self.proc.clone(),
        }
    }

    /// Turns exit signals into [`Message::Exit`] messages (`true`) or lets them kill this
    /// process (`false`, the default). `kill` can never be trapped.
    pub fn trap_exit(&self, on: bool) {
        self.proc.core.meta.lock().trap_exit = on;
    }

    /// Waits for the next signal or message; signals (trapped exits, `DOWN`) first.
    pub fn recv(&mut self) -> Recv<'_, M> {
        Recv { ctx: self }
    }

    /// Like [`recv`](Self::recv), giving up after `timeout` (Erlang's `receive ... after`).
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Option<Message<M>> {
        tokio::time::timeout(timeout, self.recv()).await.ok()
    }

    /// Selective receive (Erlang's `receive Pattern -> ... after Timeout -> ... end`):
    /// the first signal or message that `pred` accepts, waiting up to `timeout`
    /// ([`INFINITY`](crate::gen_server::INFINITY) waits without a timer); `None` on
    /// timeout. Everything `pred` rejects stays queued, in order, for later receives;
    /// signals (trapped exits, `DOWN`s) are tested first, as `recv` serves them first.
    ///
    /// Cost: each wake-up tests the whole queue again (as the BEAM does without its
    /// reference trick), so keep mailboxes short while receiving selectively. Plain
    /// [`recv`](Self::recv) pays nothing for this.
    pub async fn recv_match<F>(&mut self, pred: F, timeout: Duration) -> Option<Message<M>>
    where
        F: FnMut(&Message<M>) -> bool,
    {
        let mut pred = pred;
        let wait = std::future::poll_fn(|cx| self.poll_match(cx, &mut pred));
        crate::deadline::timeout(timeout, wait).await.ok()
    }

    fn poll_match(
        &mut self,
        cx: &mut TaskCx<'_>,
        pred: &mut dyn FnMut(&Message<M>) -> bool,
    ) -> Poll<Message<M>> {
        if self.proc.mailbox.flags.load(Ordering::Acquire) & KILLED != 0 {
            return Poll::Pending;
        }
        self.account();
        let mut skipped: VecDeque<M> = VecDeque::new();
        loop {
            let (found, seen) = self.match_signals(pred);
            if let Some(m) = found {
                self.unskip(skipped);
                return Poll::Ready(m);
            }
            while let Some(m) = self.buf.pop_front() {
                let msg = Message::Msg(m);
                if pred(&msg) {
                    self.unskip(skipped);
                    self.begin();
                    return Poll::Ready(msg);
                }
                if let Message::Msg(m) = msg {
                    skipped.push_back(m);
                }
            }
            match self
                .proc
                .mailbox
                .take_messages(&mut self.buf, cx.waker(), seen)
            {
                // Messages taken, or a signal arrived: look again.
                Taken::Batch | Taken::Signal(_) => continue,
                Taken::Empty => {
                    self.unskip(skipped);
                    return Poll::Pending;
                }
            }
        }
    }

    /// Tests the queued signals in order; returns the first `pred` accepts and how many
    /// were tested and put back (in order); signals queued beyond those are untested.
    fn match_signals(
        &mut self,
        pred: &mut dyn FnMut(&Message<M>) -> bool,
    ) -> (Option<Message<M>>, usize) {
        let mailbox = &self.proc.mailbox;
        if mailbox.flags.load(Ordering::Acquire) & HAS_SIGNAL == 0 {
            return (None, 0);
        }
        let mut kept = VecDeque::new();
        let mut found = None;
        while let Some(sig) = mailbox.take_signal() {
            let m: Message<M> = sig.clone().into();
            if pred(&m) {
                found = Some(m);
                break;
            }
            kept.push_back(sig);
        }
        let left = mailbox.unget_signals(kept);
        (found, left)
    }

    /// Puts skipped messages back in front of the taken ones, in order.
    fn unskip(&mut self, skipped: VecDeque<M>) {
        for m in skipped.into_iter().rev() {
            self.buf.push_front(m);
        }
    }

    /// Takes the next signal or message if one is already waiting.
    pub fn try_recv(&mut self) -> Option<Message<M>> {
        let waker = futures::task::noop_waker();
        let mut cx = TaskCx::from_waker(&waker);
        match self.poll_recv(&mut cx) {
            Poll::Ready(m) => Some(m),
            Poll::Pending => None,
        }
    }

    /// Records the state-size estimate shown by [`process_info`](crate::process_info).
    pub fn report_state_size(&self, bytes: usize) {
        self.proc
            .core
            .state_size
            .store(bytes as u64, Ordering::Relaxed);
    }

    /// Ends the timing of the message being handled, if any.
    #[inline]
    fn account(&mut self) {
        if self.started == 0 {
            return;
        }
        let spent = clock::now().saturating_sub(self.started);
        let core = &self.proc.core;
        core.busy_ns.store(
            core.busy_ns.load(Ordering::Relaxed) + spent,
            Ordering::Relaxed,
        );
        if spent > clock::long_threshold_ns() {
            clock::report_long_handler(core, spent);
        }
        self.started = 0;
    }

    /// Counts a message as taken out of the mailbox and starts timing its handling.
    #[inline]
    fn begin(&mut self) {
        // Single writer: a plain load and store, no read-modify-write.
        let core = &self.proc.core;
        core.handled
            .store(core.handled.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        if clock::counters_enabled() {
            self.started = clock::now();
        }
    }

    #[inline]
    fn poll_recv(&mut self, cx: &mut TaskCx<'_>) -> Poll<Message<M>> {
        let flags = self.proc.mailbox.flags.load(Ordering::Acquire);
        if flags & KILLED != 0 {
            // The kill is on its way (the task sees it on its next poll); never hand
            // out another message.
            return Poll::Pending;
        }
        self.account();
        if flags & HAS_SIGNAL != 0 {
            if let Some(sig) = self.proc.mailbox.take_signal() {
                return Poll::Ready(sig.into());
            }
        }
        if !self.buf.is_empty() {
            self.budget -= 1;
            if self.budget == 0 {
                self.budget = BUDGET;
                if self.slice_over() {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
            }
            if let Some(m) = self.buf.pop_front() {
                self.begin();
                return Poll::Ready(Message::Msg(m));
            }
        }
        match self.proc.mailbox.take(&mut self.buf, cx.waker()) {
            Taken::Signal(sig) => Poll::Ready(sig.into()),
            Taken::Batch => match self.buf.pop_front() {
                Some(m) => {
                    self.begin();
                    Poll::Ready(Message::Msg(m))
                }
                None => Poll::Pending,
            },
            Taken::Empty => {
                // Parked: the next wake-up starts a fresh time slice.
                self.budget = BUDGET;
                self.slice_checks = 0;
                Poll::Pending
            }
        }
    }

    /// Called every [`BUDGET`] messages taken without parking: true when this process
    /// has used up its time slice and should yield (then a new slice starts).
    #[cold]
    fn slice_over(&mut self) -> bool {
        let now = clock::now();
        if self.slice_checks == 0 {
            self.slice_start = now;
        }
        self.slice_checks += 1;
        // Strictly more than one tick apart: two reads of the coarse clock straddling
        // one tick may be a microsecond apart.
        if self.slice_checks >= SLICE_CHECKS || now.saturating_sub(self.slice_start) > SLICE_NS {
            self.slice_checks = 0;
            return true;
        }
        false
    }
}

/// The future returned by [`Context::recv`].
pub struct Recv<'a, M> {
    ctx: &'a mut Context<M>,
}

impl<M: Send + 'static> Future for Recv<'_, M> {
    type Output = Message<M>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskCx<'_>) -> Poll<Message<M>> {
        self.ctx.poll_recv(cx)
    }
}

impl<M> From<Signal> for Message<M> {
    fn from(s: Signal) -> Self {
        match s {
            Signal::Exit { from, reason, .. } => Message::Exit { from, reason },
            Signal::Down(d) => Message::Down(d),
        }
    }
}
