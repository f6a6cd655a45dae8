import { html } from 'htm/preact';
import { useEffect, useRef } from 'preact/hooks';
import type { UiSnapshot } from '../types.js';

/** What every view is handed. */
export interface ViewProps {
  view: UiSnapshot;
  /** The token may act (admin scope): action buttons are shown. */
  canAct: boolean;
  /** Runs an API call, shows a notice with its result, refreshes the view; resolves to the answer or undefined. */
  act: <T>(
    method: string,
    path: string,
    body: unknown,
    done: (answer: T) => string,
  ) => Promise<T | undefined>;
  now: number;
}

export interface DialogProps {
  title: string;
  onClose: () => void;
  children: unknown;
  /** Wider than a confirmation: for content such as a payload. */
  wide?: boolean;
}

/** A modal <dialog> (focus kept inside, Escape closes it). */
export function Dialog({ title, onClose, children, wide }: DialogProps) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    return () => d?.close();
  }, []);
  return html`<dialog ref=${ref} class=${wide ? 'dialog wide' : 'dialog'} aria-label=${title} onClose=${onClose}>
    <h2>${title}</h2>
    ${children}
  </dialog>`;
}
