// i18n.js: every label of both pages in English and Japanese, and locale
// formatting of times, durations, percentages (Intl). The language follows
// the browser (navigator.language) until the user picks one; the choice is
// kept in localStorage. Customer text is never translated or altered.

const EN = {
  "a11y.skip": "Skip to content",
  "common.language": "Language",
  "common.shortcuts": "Shortcuts",
  "common.signOut": "Sign out",
  "common.close": "Close",
  "common.cancel": "Cancel",
  "common.loading": "Loading…",
  "signin.title": "Sign in",
  "signin.helpAgent": "Paste the agent token your supervisor gave you, or open your personal sign-in link.",
  "signin.helpSupervisor":
    "Paste a supervisor token (presence token --role supervisor --sub YOUR_NAME), or open the wallboard link.",
  "signin.token": "Token",
  "signin.submit": "Sign in",
  "conn.open": "Connected",
  "conn.connecting": "Connecting…",
  "conn.closed": "Disconnected",
  "conn.retry": "Reconnecting in {s} s…",
  "conn.reconnecting": "Reconnecting…",
  "err.unauthorized": "The token was refused (missing, wrong or expired). Sign in again.",
  "err.forbidden": "This token is not for this page.",
  "err.unknownAgent": "This token's agent is not configured in the center.",
  "err.badToken": "That does not look like a token.",
  "err.disconnected": "Not connected; try again in a moment.",
  "err.timeout": "The server did not answer in time.",
  "err.notAvailable": "Not available on this server yet.",
  "agent.title": "Agent",
  "agent.ext": "Ext. {ext}",
  "agent.enableNotifications": "Enable notifications",
  "agent.myStatus": "My status",
  "agent.timeInStatus": "Time in status",
  "agent.setStatus": "Set status",
  "agent.reason": "Reason",
  "agent.noReason": "— no reason —",
  "agent.apply": "Apply",
  "agent.capacity": "Capacity",
  "agent.capText": "{load} of {cap} units in use",
  "agent.capFull": "{load} of {cap} units in use: full, no room for more work",
  "agent.channelUnits": "{w} units per item",
  "agent.offers": "Offers",
  "agent.newOffer": "New work offered",
  "agent.workInHand": "Work in hand",
  "agent.noWork": "Nothing in hand. Set yourself Available to receive work.",
  "agent.noWorkWaiting": "Nothing in hand. You are Available: work is offered as soon as it arrives.",
  "agent.noWorkOffered": "Nothing in hand yet: accept the offer above to start on it.",
  "agent.removed": "Your agent profile was removed from the center.",
  "offer.accept": "Accept",
  "offer.decline": "Decline",
  "offer.declineReason": "Reason for declining",
  "offer.confirmDecline": "Decline",
  "offer.priority": "priority {p}",
  "offer.expiresIn": "Time left to answer",
  "offer.noTimeout": "no time limit",
  "offer.noSubject": "(no subject)",
  "offer.handoffFrom": "Handed over by {from}",
  "offer.historyCount": "{n} earlier events on this item",
  "decline.busy": "Busy with another customer",
  "decline.wrong_skill": "Not my skill",
  "decline.language": "Language",
  "decline.other": "Other",
  "rescind.timeout": "An offer timed out and went back to its queue.",
  "rescind.status": "Open offers went back to their queue (status change).",
  "rescind.declined": "Offer declined.",
  "rescind.abandoned": "The customer left before the offer was answered.",
  "rescind.other": "An offer was withdrawn.",
  "customer.name": "Customer",
  "customer.phone": "Phone",
  "customer.email": "Email",
  "customer.id": "Customer id",
  "state.offered": "Offered",
  "state.queued": "Queued",
  "state.assigned": "In progress",
  "state.wrapup": "Wrap-up",
  "state.completed": "Completed",
  "state.abandoned": "Abandoned",
  "state.transferred": "Transferred",
  "work.transferredToast": "The item was transferred.",
  "work.pulledToast": "A supervisor took the item back to its queue.",
  "detail.id": "Item",
  "detail.elapsed": "Time since accepted",
  "detail.customer": "Customer (screen pop)",
  "detail.openCrm": "Open in CRM",
  "detail.payload": "Details",
  "detail.notes": "Notes",
  "detail.addNote": "Add note",
  "detail.noNotes": "No notes yet.",
  "detail.history": "History",
  "detail.noHistory": "No history.",
  "detail.historyFailed": "Could not load the history: {e}",
  "detail.wrapup": "Start wrap-up",
  "detail.inWrapup": "In wrap-up; completes by itself in",
  "detail.wrapupLeft": "Wrap-up time left",
  "detail.disposition": "Disposition (e.g. resolved)",
  "detail.complete": "Complete",
  "detail.failed.accept": "Could not accept: {e}",
  "detail.failed.decline": "Could not decline: {e}",
  "detail.failed.wrapup": "Could not start the wrap-up: {e}",
  "detail.failed.complete": "Could not complete: {e}",
  "detail.failed.call": "The phone system did not take it: {e}",
  "detail.failed.note": "Could not save the note: {e}",
  "call.title": "Call",
  "call.timer": "Call time",
  "call.length": "Length of the call",
  "call.over": "The call has ended. Start the wrap-up when you are ready.",
  "call.overWrapup": "The call has ended; wrap-up is under way.",
  "call.hold": "Hold",
  "call.resume": "Resume",
  "call.mute": "Mute",
  "call.unmute": "Unmute",
  "call.transfer": "Transfer call",
  "call.hangup": "Hang up",
  "call.transferTarget": "Extension or number",
  "call.state.active": "Connected",
  "call.state.held": "On hold",
  "call.state.muted": "Muted",
  "call.state.ended": "Ended",
  "call.state.transferring": "Transferring",
  "xfer.title": "Transfer or escalate",
  "xfer.to": "Transfer to",
  "xfer.queue": "A queue",
  "xfer.agent": "An agent",
  "xfer.agentId": "Agent id",
  "xfer.note": "Handoff note",
  "xfer.submit": "Transfer",
  "xfer.done": "Transferred.",
  "ev.create": "Created",
  "ev.offer": "Offered",
  "ev.accept": "Accepted",
  "ev.decline": "Declined",
  "ev.rescind": "Offer withdrawn",
  "ev.wrapup": "Wrap-up started",
  "ev.complete": "Completed",
  "ev.abandon": "Abandoned",
  "ev.note": "Note",
  "ev.comment": "Note",
  "ev.transfer": "Transferred",
  "ev.reassign": "Reassigned",
  "ev.push": "Pushed",
  "ev.pull": "Pulled back",
  "ev.message": "Message",
  "ev.reopen": "Reopened",
  "ev.case.status": "Case status",
  "ev.status": "Status",
  "keys.accept": "Accept the oldest offer",
  "keys.decline": "Decline the oldest offer (asks for a reason)",
  "keys.status": "Open the status menu",
  "keys.openWork": "Open the n-th item in hand",
  "keys.wrapup": "Start wrap-up of the open item",
  "keys.note": "Write a note on the open item",
  "keys.close": "Close the panel or dialog",
  "keys.help": "Show this help",
  "keys.search": "Search agents",
  "keys.big": "Big-screen mode on or off",
  "keys.rowActions": "On a row: supervisor actions for that agent",
  "wb.title": "Wallboard",
  "wb.bigScreen": "Big screen",
  "wb.kpis": "Key figures",
  "wb.queues": "Queues",
  "wb.agents": "Agents",
  "wb.search": "Search",
  "wb.queue": "Queue",
  "wb.skill": "Skill",
  "wb.status": "Status",
  "wb.sort": "Sort",
  "wb.sortName": "Name",
  "wb.sortStatus": "Status",
  "wb.sortTime": "Time in status",
  "wb.sortLoad": "Load",
  "wb.sortItems": "Items",
  "wb.colAgent": "Agent",
  "wb.colStatus": "Status",
  "wb.colReason": "Reason",
  "wb.colTime": "Time in status",
  "wb.colLoad": "Load",
  "wb.colItems": "Current items",
  "wb.colActions": "Actions",
  "wb.noAgents": "No agent matches these filters.",
  "wb.allStatuses": "All statuses",
  "wb.allQueues": "All queues",
  "wb.allSkills": "All skills",
  "wb.disconnected": "no connection",
  "wb.loadRoom": "Green: room for more work",
  "wb.loadFull": "Blue: full, no room for more work (normal on a call)",
  "wb.waiting": "waiting",
  "wb.oldest": "Oldest wait",
  "wb.available": "Available",
  "wb.ready": "With room",
  "wb.loggedIn": "Logged in",
  "wb.slThreshold": "SL {s} s",
  "wb.level.ok": "within target",
  "wb.level.warn": "nearing the service-level limit",
  "wb.level.over": "over the service-level limit",
  "wb.forceStatus": "Force status",
  "wb.statusForced": "Status changed.",
  "wb.push": "Push a waiting item to this agent",
  "wb.pushHelp": "The item is offered to this agent now, ahead of routing.",
  "wb.pushBtn": "Push",
  "wb.pushPick": "Waiting item",
  "wb.pushTo": "Push to…",
  "wb.pushTitle": "Push to an agent",
  "wb.pushAgent": "Agent",
  "wb.pushed": "Offered to the agent.",
  "wb.nothingWaitingHere": "Nothing is waiting in this agent's queues.",
  "wb.nobodySignedIn": "No agent is signed in.",
  "wb.inQueue": "In this queue",
  "wb.otherAgents": "Other agents",
  "wb.held": "This agent's items",
  "wb.heldHelp": "Pull takes the item back to its queue; Reassign moves it to the agent you choose.",
  "wb.heldPick": "Item",
  "wb.nothingHeld": "No offer and nothing in hand",
  "wb.reassignTo": "Reassign to",
  "wb.reassignBtn": "Reassign",
  "wb.pullBtn": "Pull",
  "wb.done": "Done.",
  "wb.itemState.offered": "offered",
  "wb.itemState.assigned": "in hand",
  "wb.itemState.wrapup": "wrap-up",
  "wb.waitingList": "Waiting list",
  "chart.title": "Today",
  "chart.sl": "Service level per 15 minutes",
  "chart.volume": "Contacts per 15 minutes",
  "chart.wait": "Average wait (ASA) per 15 minutes",
  "chart.byType": "Cases by type",
  "chart.bySource": "Cases by source",
  "chart.byCustomer": "Cases by customer (top 8)",
  "chart.none": "(none)",
  "chart.noCases": "No cases today yet",
  "wb.closed": "Closed",
  "wb.open": "Open",
  "wb.opensAt": "opens {at}",
  "wb.closesAt": "closes {at}",
  "wb.closedHint": "Outside business hours: the queue follows its after-hours rule",
  "wb.openCrm": "Open in CRM",
  "wb.nothingWaiting": "Nothing is waiting.",
  "wb.waitingMore": "{n} more waiting in {queue}",
  "wb.colQueue": "Queue",
  "wb.colWaited": "Waiting for",
  "wb.colChannel": "Channel",
  "wb.colPriority": "Priority",
  "wb.colCustomer": "Customer",
  "wb.colSubject": "Subject",
  "wb.priorityHint": "Higher is served first",
  "kpi.service_level": "Service level",
  "kpi.asa": "ASA",
  "kpi.aht": "AHT",
  "kpi.abandonment_rate": "Abandonment rate",
  "kpi.occupancy": "Occupancy",
  "kpi.utilisation": "Utilisation",
  "kpi.utilization": "Utilisation",
  "kpi.offered": "Offered",
  "kpi.answered": "Answered",
  "kpi.abandoned": "Abandoned contacts",
  "kpi.longest_wait": "Longest wait",
  "kpi.staffing_needed": "Agents needed",
  "kpi.staffed": "Agents staffed",
  "kpi.fcr": "First-contact resolution",
  "kpi.waiting": "Waiting",
  "kpi.logged_in": "Logged in",
  "kpi.routable": "Available",
  "kpi.handled": "Handled",
  "kpi.transfers": "Transfers",
  "kpi.max_answer_wait": "Longest answer wait",
  "kpi.window": "Period",
  "kpi.window.today": "Today",
  "kpi.window.15m": "Last 15 min",
  "kpi.window.30m": "Last 30 min",
  "kpi.window.60m": "Last 60 min",
  "status.Available": "Available",
  "status.Away": "Away",
  "status.Break": "Break",
  "status.Lunch": "Lunch",
  "status.Offline": "Offline",
  "status.working": "{status} · busy",
  "status.idleHint": "Waiting for work: offered the next item that fits",
  "status.workingHint": "Holding or being offered work; offered more while there is room",
  "reason.missed offers": "Missed offers",
  "reason.disconnected": "Disconnected",
  "reason.After call": "After call",
  "reason.Coaching": "Coaching",
  "reason.Coffee": "Coffee",
  "reason.Meeting": "Meeting",
  "reason.Training": "Training",
  "channel.voice": "Voice",
  "channel.video": "Video",
  "channel.chat": "Chat",
  "channel.sms": "SMS",
  "channel.social": "Social",
  "channel.email": "Email",
  "channel.web": "Web form",
};

const JA = {
  "a11y.skip": "本文へ移動",
  "common.language": "言語",
  "common.shortcuts": "ショートカット",
  "common.signOut": "サインアウト",
  "common.close": "閉じる",
  "common.cancel": "キャンセル",
  "common.loading": "読み込み中…",
  "signin.title": "サインイン",
  "signin.helpAgent": "管理者から受け取ったエージェント用トークンを貼り付けるか、個人用のサインインリンクを開いてください。",
  "signin.helpSupervisor":
    "スーパーバイザー用トークン（presence token --role supervisor --sub 名前）を貼り付けるか、ウォールボードのリンクを開いてください。",
  "signin.token": "トークン",
  "signin.submit": "サインイン",
  "conn.open": "接続中",
  "conn.connecting": "接続しています…",
  "conn.closed": "切断",
  "conn.retry": "{s} 秒後に再接続します…",
  "conn.reconnecting": "再接続しています…",
  "err.unauthorized": "トークンが拒否されました（未指定・誤り・期限切れ）。もう一度サインインしてください。",
  "err.forbidden": "このトークンはこのページでは使えません。",
  "err.unknownAgent": "このトークンのエージェントはセンターに登録されていません。",
  "err.badToken": "トークンの形式ではありません。",
  "err.disconnected": "接続されていません。少し待ってからもう一度お試しください。",
  "err.timeout": "サーバーが時間内に応答しませんでした。",
  "err.notAvailable": "このサーバーではまだ利用できません。",
  "agent.title": "エージェント",
  "agent.ext": "内線 {ext}",
  "agent.enableNotifications": "通知を有効にする",
  "agent.myStatus": "自分のステータス",
  "agent.timeInStatus": "現在のステータスの経過時間",
  "agent.setStatus": "ステータスを変更",
  "agent.reason": "理由",
  "agent.noReason": "— 理由なし —",
  "agent.apply": "適用",
  "agent.capacity": "対応容量",
  "agent.capText": "{cap} 単位中 {load} 単位を使用中",
  "agent.capFull": "{cap} 単位中 {load} 単位を使用中：満杯のため、これ以上の案件は届きません",
  "agent.channelUnits": "1件あたり {w} 単位",
  "agent.offers": "着信オファー",
  "agent.newOffer": "新しい案件の着信",
  "agent.workInHand": "対応中の案件",
  "agent.noWork": "対応中の案件はありません。受付可にすると案件が届きます。",
  "agent.noWorkWaiting": "対応中の案件はありません。受付可なので、案件が届きしだいオファーされます。",
  "agent.noWorkOffered": "対応中の案件はまだありません。上のオファーに応答すると対応を始められます。",
  "agent.removed": "あなたのエージェント設定はセンターから削除されました。",
  "offer.accept": "応答",
  "offer.decline": "辞退",
  "offer.declineReason": "辞退の理由",
  "offer.confirmDecline": "辞退する",
  "offer.priority": "優先度 {p}",
  "offer.expiresIn": "応答までの残り時間",
  "offer.noTimeout": "時間制限なし",
  "offer.noSubject": "（件名なし）",
  "offer.handoffFrom": "{from} からの引き継ぎ",
  "offer.historyCount": "この案件には {n} 件の履歴があります",
  "decline.busy": "他のお客様の対応中",
  "decline.wrong_skill": "対応スキル外",
  "decline.language": "言語",
  "decline.other": "その他",
  "rescind.timeout": "オファーが時間切れになり、キューに戻りました。",
  "rescind.status": "ステータス変更により、オファーはキューに戻りました。",
  "rescind.declined": "オファーを辞退しました。",
  "rescind.abandoned": "応答前にお客様が離脱しました。",
  "rescind.other": "オファーが取り消されました。",
  "customer.name": "お客様",
  "customer.phone": "電話番号",
  "customer.email": "メール",
  "customer.id": "顧客ID",
  "state.offered": "オファー中",
  "state.queued": "待機中",
  "state.assigned": "対応中",
  "state.wrapup": "後処理",
  "state.completed": "完了",
  "state.abandoned": "放棄",
  "state.transferred": "転送済み",
  "work.transferredToast": "案件を転送しました。",
  "work.pulledToast": "スーパーバイザーが案件をキューに戻しました。",
  "detail.id": "案件",
  "detail.elapsed": "応答からの経過時間",
  "detail.customer": "お客様情報（スクリーンポップ）",
  "detail.openCrm": "CRMで開く",
  "detail.payload": "詳細",
  "detail.notes": "メモ",
  "detail.addNote": "メモを追加",
  "detail.noNotes": "メモはまだありません。",
  "detail.history": "履歴",
  "detail.noHistory": "履歴はありません。",
  "detail.historyFailed": "履歴を読み込めませんでした: {e}",
  "detail.wrapup": "後処理を開始",
  "detail.inWrapup": "後処理中。自動完了まで",
  "detail.wrapupLeft": "後処理の残り時間",
  "detail.disposition": "対応結果（例: 解決）",
  "detail.complete": "完了",
  "detail.failed.accept": "応答できませんでした: {e}",
  "detail.failed.decline": "辞退できませんでした: {e}",
  "detail.failed.wrapup": "後処理を開始できませんでした: {e}",
  "detail.failed.complete": "完了できませんでした: {e}",
  "detail.failed.call": "電話システムが受け付けませんでした: {e}",
  "detail.failed.note": "メモを保存できませんでした: {e}",
  "call.title": "通話",
  "call.timer": "通話時間",
  "call.length": "通話の長さ",
  "call.over": "通話は終了しました。準備ができたら後処理を開始してください。",
  "call.overWrapup": "通話は終了しました。後処理中です。",
  "call.hold": "保留",
  "call.resume": "保留解除",
  "call.mute": "ミュート",
  "call.unmute": "ミュート解除",
  "call.transfer": "通話を転送",
  "call.hangup": "切断",
  "call.transferTarget": "内線または電話番号",
  "call.state.active": "通話中",
  "call.state.held": "保留中",
  "call.state.muted": "ミュート中",
  "call.state.ended": "終了",
  "call.state.transferring": "転送中",
  "xfer.title": "転送・エスカレーション",
  "xfer.to": "転送先",
  "xfer.queue": "キュー",
  "xfer.agent": "エージェント",
  "xfer.agentId": "エージェントID",
  "xfer.note": "引き継ぎメモ",
  "xfer.submit": "転送",
  "xfer.done": "転送しました。",
  "ev.create": "受付",
  "ev.offer": "オファー",
  "ev.accept": "応答",
  "ev.decline": "辞退",
  "ev.rescind": "オファー取消",
  "ev.wrapup": "後処理開始",
  "ev.complete": "完了",
  "ev.abandon": "放棄",
  "ev.note": "メモ",
  "ev.comment": "メモ",
  "ev.transfer": "転送",
  "ev.reassign": "再割り当て",
  "ev.push": "割り当て指示",
  "ev.pull": "キューへ戻す",
  "ev.message": "メッセージ",
  "ev.reopen": "再オープン",
  "ev.case.status": "ケースのステータス",
  "ev.status": "ステータス",
  "keys.accept": "最も古いオファーに応答",
  "keys.decline": "最も古いオファーを辞退（理由を選択）",
  "keys.status": "ステータスメニューを開く",
  "keys.openWork": "n 番目の対応中案件を開く",
  "keys.wrapup": "開いている案件の後処理を開始",
  "keys.note": "開いている案件にメモを書く",
  "keys.close": "パネルやダイアログを閉じる",
  "keys.help": "このヘルプを表示",
  "keys.search": "エージェントを検索",
  "keys.big": "大画面モードの切り替え",
  "keys.rowActions": "行の上で: そのエージェントへの操作",
  "wb.title": "ウォールボード",
  "wb.bigScreen": "大画面",
  "wb.kpis": "主要指標",
  "wb.queues": "キュー",
  "wb.agents": "エージェント",
  "wb.search": "検索",
  "wb.queue": "キュー",
  "wb.skill": "スキル",
  "wb.status": "ステータス",
  "wb.sort": "並べ替え",
  "wb.sortName": "名前",
  "wb.sortStatus": "ステータス",
  "wb.sortTime": "経過時間",
  "wb.sortLoad": "負荷",
  "wb.sortItems": "案件数",
  "wb.colAgent": "エージェント",
  "wb.colStatus": "ステータス",
  "wb.colReason": "理由",
  "wb.colTime": "経過時間",
  "wb.colLoad": "負荷",
  "wb.colItems": "対応中の案件",
  "wb.colActions": "操作",
  "wb.noAgents": "条件に合うエージェントはいません。",
  "wb.allStatuses": "すべてのステータス",
  "wb.allQueues": "すべてのキュー",
  "wb.allSkills": "すべてのスキル",
  "wb.disconnected": "接続なし",
  "wb.loadRoom": "緑：まだ案件を受けられます",
  "wb.loadFull": "青：満杯で、これ以上の案件は受けられません（通話中は通常の状態です）",
  "wb.waiting": "待ち",
  "wb.oldest": "最長待ち時間",
  "wb.available": "受付可",
  "wb.ready": "空きあり",
  "wb.loggedIn": "ログイン中",
  "wb.slThreshold": "SL {s} 秒",
  "wb.level.ok": "目標内",
  "wb.level.warn": "サービスレベルの上限に近い",
  "wb.level.over": "サービスレベルの上限を超過",
  "wb.forceStatus": "ステータスを強制変更",
  "wb.statusForced": "ステータスを変更しました。",
  "wb.push": "待機中の案件をこのエージェントに割り当て",
  "wb.pushHelp": "ルーティングより先に、このエージェントへオファーします。",
  "wb.pushBtn": "割り当て",
  "wb.pushPick": "待機中の案件",
  "wb.pushTo": "割り当て…",
  "wb.pushTitle": "エージェントに割り当て",
  "wb.pushAgent": "エージェント",
  "wb.pushed": "エージェントにオファーしました。",
  "wb.nothingWaitingHere": "このエージェントのキューに待機中の案件はありません。",
  "wb.nobodySignedIn": "ログイン中のエージェントがいません。",
  "wb.inQueue": "このキューのメンバー",
  "wb.otherAgents": "その他のエージェント",
  "wb.held": "このエージェントの案件",
  "wb.heldHelp": "「戻す」で案件をキューに戻し、「再割り当て」で選んだエージェントに移します。",
  "wb.heldPick": "案件",
  "wb.nothingHeld": "オファーも対応中の案件もありません",
  "wb.reassignTo": "再割り当て先",
  "wb.reassignBtn": "再割り当て",
  "wb.pullBtn": "戻す",
  "wb.done": "完了しました。",
  "wb.itemState.offered": "オファー中",
  "wb.itemState.assigned": "対応中",
  "wb.itemState.wrapup": "後処理",
  "wb.waitingList": "待ち呼一覧",
  "chart.title": "本日",
  "chart.sl": "15分ごとのサービスレベル",
  "chart.volume": "15分ごとの受付件数",
  "chart.wait": "15分ごとの平均応答時間（ASA）",
  "chart.byType": "種別ごとの案件数",
  "chart.bySource": "受付経路ごとの案件数",
  "chart.byCustomer": "顧客ごとの案件数（上位8件）",
  "chart.none": "（なし）",
  "chart.noCases": "本日の案件はまだありません",
  "wb.closed": "受付時間外",
  "wb.open": "受付中",
  "wb.opensAt": "{at} に受付開始",
  "wb.closesAt": "{at} に受付終了",
  "wb.closedHint": "営業時間外です。キューは時間外のルールに従います",
  "wb.openCrm": "CRMで開く",
  "wb.nothingWaiting": "待機中の案件はありません。",
  "wb.waitingMore": "{queue}でさらに{n}件待機中",
  "wb.colQueue": "キュー",
  "wb.colWaited": "待ち時間",
  "wb.colChannel": "チャネル",
  "wb.colPriority": "優先度",
  "wb.colCustomer": "顧客",
  "wb.colSubject": "件名",
  "wb.priorityHint": "大きいほど先に対応されます",
  "kpi.service_level": "サービスレベル",
  "kpi.asa": "平均応答時間",
  "kpi.aht": "平均処理時間",
  "kpi.abandonment_rate": "放棄率",
  "kpi.occupancy": "稼働率",
  "kpi.utilisation": "容量使用率",
  "kpi.utilization": "容量使用率",
  "kpi.offered": "着信数",
  "kpi.answered": "応答数",
  "kpi.abandoned": "放棄件数",
  "kpi.longest_wait": "最長待ち時間",
  "kpi.staffing_needed": "必要人数",
  "kpi.staffed": "配置人数",
  "kpi.fcr": "一次解決率",
  "kpi.waiting": "待ち件数",
  "kpi.logged_in": "ログイン中",
  "kpi.routable": "受付可",
  "kpi.handled": "処理件数",
  "kpi.transfers": "転送数",
  "kpi.max_answer_wait": "最長応答待ち",
  "kpi.window": "期間",
  "kpi.window.today": "本日",
  "kpi.window.15m": "直近15分",
  "kpi.window.30m": "直近30分",
  "kpi.window.60m": "直近60分",
  "status.Available": "受付可",
  "status.Away": "離席",
  "status.Break": "休憩",
  "status.Lunch": "昼食",
  "status.Offline": "オフライン",
  "status.working": "{status} · 対応中",
  "status.idleHint": "案件待ち：条件に合う次の案件がオファーされます",
  "status.workingHint": "案件を対応中またはオファー中：空きがあれば、さらにオファーされます",
  "reason.missed offers": "オファー未応答",
  "reason.disconnected": "接続切れ",
  "reason.After call": "後処理",
  "reason.Coaching": "コーチング",
  "reason.Coffee": "小休憩",
  "reason.Meeting": "会議",
  "reason.Training": "研修",
  "channel.voice": "電話",
  "channel.video": "ビデオ",
  "channel.chat": "チャット",
  "channel.sms": "SMS",
  "channel.social": "SNS",
  "channel.email": "メール",
  "channel.web": "Webフォーム",
};

export const DICTS = { en: EN, ja: JA };
const LANG_KEY = "presence.lang";
const listeners = [];

function initialLang() {
  const saved = localStorage.getItem(LANG_KEY);
  if (saved && DICTS[saved]) return saved;
  const langs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language];
  for (const l of langs) {
    const base = String(l || "").toLowerCase().split("-")[0];
    if (DICTS[base]) return base;
  }
  return "en";
}

let lang = initialLang();
document.documentElement.lang = lang;

export function getLang() {
  return lang;
}

export function setLang(next) {
  if (!DICTS[next] || next === lang) return;
  lang = next;
  localStorage.setItem(LANG_KEY, next);
  document.documentElement.lang = next;
  for (const fn of listeners) fn(next);
}

export function onLangChange(fn) {
  listeners.push(fn);
}

/** The label for key in the current language ({name} placeholders filled); fallback, else the key. */
export function t(key, vars, fallback) {
  let s = DICTS[lang][key];
  if (s === undefined) s = EN[key];
  if (s === undefined) return fallback !== undefined ? fallback : key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (vars[k] !== undefined ? String(vars[k]) : m));
  return s;
}

// Names configured by the center (statuses, reasons) are shown translated
// when we know them, and as configured otherwise.
export const tStatus = (name) => t(`status.${name}`, null, name || "");
export const tReason = (name) => t(`reason.${name}`, null, name || "");
export const tChannel = (name) => t(`channel.${name}`, null, name || "");
/** A status's name; in a routable status holding or being offered work, "Available · busy". */
export const statusLabel = (name, working = false) =>
  working ? t("status.working", { status: tStatus(name) }) : tStatus(name);

/** Fill [data-i18n] text, and [data-i18n-aria-label] / [data-i18n-placeholder] attributes. */
export function applyI18n(root) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-aria-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nAriaLabel));
  }
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.setAttribute("placeholder", t(el.dataset.i18nPlaceholder));
  }
  const title = document.body.classList.contains("page-agent") ? t("agent.title") : t("wb.title");
  document.title = `${title} · presence`;
}

// -- formatting -----------------------------------------------------------------

const locale = () => (lang === "ja" ? "ja-JP" : undefined);

/** 1:05, 12:03, 1:02:03: a ticking timer (digits read the same in both languages). */
export function fmtElapsed(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const hh = Math.floor(total / 3600);
  const mm = Math.floor((total % 3600) / 60);
  const ss = total % 60;
  const pad = (n) => String(n).padStart(2, "0");
  return hh ? `${hh}:${pad(mm)}:${pad(ss)}` : `${mm}:${pad(ss)}`;
}

export function fmtCountdown(ms) {
  return fmtElapsed(Math.max(0, Math.ceil(ms / 1000) * 1000));
}

export function fmtClock(ms) {
  return new Intl.DateTimeFormat(locale(), { hour: "2-digit", minute: "2-digit", second: "2-digit" }).format(
    new Date(ms),
  );
}

/** "Wed 09:00": a weekday and time, on the clock of `timeZone` (an IANA name) when given. */
export function fmtWeekdayTime(ms, timeZone) {
  const opts = { weekday: "short", hour: "2-digit", minute: "2-digit" };
  try {
    return new Intl.DateTimeFormat(locale(), timeZone ? { ...opts, timeZone } : opts).format(new Date(ms));
  } catch {
    return new Intl.DateTimeFormat(locale(), opts).format(new Date(ms));
  }
}

export function fmtDateTime(ms) {
  return new Intl.DateTimeFormat(locale(), { dateStyle: "short", timeStyle: "medium" }).format(new Date(ms));
}

/** A duration in seconds as "42 s", "3.5 min" / "42秒", "3.5分" (Intl units). */
export function fmtDuration(seconds) {
  const s = Number(seconds) || 0;
  const unit = (u, v, digits) =>
    new Intl.NumberFormat(locale(), { style: "unit", unit: u, unitDisplay: "short", maximumFractionDigits: digits }).format(v);
  if (s < 90) return unit("second", s, 0);
  if (s < 5400) return unit("minute", s / 60, 1);
  return unit("hour", s / 3600, 1);
}

export function fmtPercent(x) {
  const v = Number(x) || 0;
  // accept both 0.85 and 85 for "85 %"
  const frac = v > 1.0001 ? v / 100 : v;
  return new Intl.NumberFormat(locale(), { style: "percent", maximumFractionDigits: 1 }).format(frac);
}

export function fmtNumber(x) {
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: 1 }).format(Number(x) || 0);
}

const PERCENT_KEYS = /(service_level|rate|occupancy|utili[sz]ation|fcr|resolution|share|ratio)$/;
const DURATION_KEYS = /(^asa$|^aht$|_wait$|_seconds$|speed_of_answer|_time$)/;

/** Format a KPI by its name: shares as percentages, times as durations, the rest as numbers. */
export function fmtKpi(key, value) {
  if (value === null || value === undefined) return "—";
  if (typeof value !== "number") return String(value);
  if (key.endsWith("_ms")) return fmtDuration(value / 1000);
  if (PERCENT_KEYS.test(key)) return fmtPercent(value);
  if (DURATION_KEYS.test(key)) return fmtDuration(value);
  return fmtNumber(value);
}

export function kpiLabel(key) {
  const known = t(`kpi.${key}`, null, "");
  if (known) return known;
  return key.replace(/_/g, " ").replace(/^\w/, (c) => c.toUpperCase());
}
