// icons.js: the pages' icons, drawn here as SVG (24 x 24; stroked 2 px,
// round, by common.js icon(), which shows each as a mask over the text's
// colour): no emoji font, which many desks lack (an emoji shows there as an
// empty box), and nothing fetched from anywhere. ch-* are channels, st-*
// statuses.

export const ICONS = {
  "ch-voice": `<path d="M5 3h3.5l2 5-2.6 1.6a11.5 11.5 0 0 0 6.5 6.5l1.6-2.6 5 2V19a2 2 0 0 1-2 2A17 17 0 0 1 3 5a2 2 0 0 1 2-2z"/>`,
  "ch-video": `<rect x="2" y="6" width="14" height="12" rx="2"/><path d="M16 10.5 22 7v10l-6-3.5"/>`,
  "ch-chat": `<path d="M20.5 12a8.5 8.5 0 0 1-12.3 7.6L3.5 21l1.4-4.5A8.5 8.5 0 1 1 20.5 12z"/><path d="M8.5 12h.01M12 12h.01M15.5 12h.01"/>`,
  "ch-sms": `<rect x="6.5" y="2" width="11" height="20" rx="2"/><path d="M9.5 7.5h5M9.5 11h3.5M11 18h2"/>`,
  "ch-social": `<circle cx="18" cy="5" r="2.5"/><circle cx="6" cy="12" r="2.5"/><circle cx="18" cy="19" r="2.5"/><path d="M8.2 10.8 15.8 6.2M8.2 13.2l7.6 4.6"/>`,
  "ch-email": `<rect x="3" y="5" width="18" height="14" rx="2"/><path d="m3.5 6.5 8.5 6.5 8.5-6.5"/>`,
  "ch-web": `<rect x="4" y="3" width="16" height="18" rx="2"/><path d="M8 8h8M8 12h8M8 16h5"/>`,
  "ch-other": `<circle cx="12" cy="12" r="3.5" fill="currentColor"/>`,
  "st-available": `<circle cx="12" cy="12" r="9"/><path d="m8 12.5 2.8 2.8L16.5 9"/>`,
  "st-working": `<path d="M4 15v-3a8 8 0 0 1 16 0v3"/><path d="M4 15h3v5H5.5A1.5 1.5 0 0 1 4 18.5zM20 15h-3v5h1.5a1.5 1.5 0 0 0 1.5-1.5z"/>`,
  "st-break": `<path d="M4 9h12v5a5 5 0 0 1-5 5H9a5 5 0 0 1-5-5z"/><path d="M16 10h1.5a2.5 2.5 0 0 1 0 5H16M8 3v3M12 3v3"/>`,
  "st-away": `<circle cx="12" cy="12" r="9"/><path d="M12 7v5l3.5 2"/>`,
  "st-offline": `<circle cx="12" cy="12" r="8"/>`,
  "st-other": `<circle cx="12" cy="12" r="5" fill="currentColor"/>`,
  "warn": `<path d="M12 3.5 2.5 20h19z"/><path d="M12 10v4.5M12 17.5h.01"/>`,
  "check": `<path d="m5 12.5 4.5 4.5L19 7.5"/>`,
  "cross": `<path d="M6 6l12 12M18 6 6 18"/>`,
  "pen": `<path d="M4 20h4L19 9l-4-4L4 16z"/><path d="m13.5 6.5 4 4"/>`,
  "history": `<path d="M3 12a9 9 0 1 0 3-6.7L3 8"/><path d="M3 3v5h5M12 8v4l3 2"/>`,
};
