"""What the three sample PDFs say: the SLA, the privacy notice and the retention schedule, page by page.

data/make_sample_pdfs.py typesets them (fpdf2); the text lives here so the layout code stays short.
"""

from __future__ import annotations

SLA = {
    "file": "service-level-agreement.pdf",
    "title": "Tallyo Service Level Agreement",
    "subject": "Uptime commitment, service credits, maintenance and exclusions",
    "pages": [
        [
            ("h1", "Service Level Agreement - Scope and Uptime Commitment"),
            (
                "p",
                "This Service Level Agreement (SLA) is part of the Tallyo Terms of Service. It describes the availability that Tallyo Ltd commits to for the Tallyo web application, the Tallyo API and the hosted invoice payment pages, and the service credits you receive if we fall short. This version is effective from 1 March 2025 and replaces all earlier versions.",
            ),
            ("h2", "Who is covered"),
            (
                "p",
                "This SLA applies to customers on the Team and Business plans, billed monthly or annually. Starter plan accounts, free trials and accounts in read-only mode are provided on a best-effort basis and are not eligible for service credits. Accounts bought through a reseller are covered only if the reseller agreement says so.",
            ),
            ("h2", "Uptime commitment"),
            (
                "p",
                "Tallyo commits to a Monthly Uptime Percentage of at least 99.9% for the covered services in every calendar month. In a 30-day month, 99.9% allows for about 43 minutes of downtime.",
            ),
            (
                "p",
                "The Monthly Uptime Percentage is calculated as the total number of minutes in the calendar month, minus the number of minutes of Downtime, divided by the total number of minutes in the month, and multiplied by 100. Minutes excluded under this SLA (see page 3) are not counted as Downtime.",
            ),
            ("h2", "What counts as Downtime"),
            (
                "p",
                "A minute counts as Downtime when more than 5% of requests to the covered service return a server error (HTTP status 500 or higher) or time out after 30 seconds, as measured by our external monitoring from at least three locations. A single slow page or a problem affecting one account only does not count as Downtime, but may be handled as a support ticket.",
            ),
            (
                "p",
                "Degraded performance, where the service responds correctly but more slowly than usual, is not Downtime. Delays of invoice emails of up to 60 minutes and delays of accounting integration syncs of up to 4 hours are also not Downtime.",
            ),
            ("h2", "Measurement and reporting"),
            (
                "p",
                "Availability is measured by Tallyo's monitoring system every 60 seconds. Incidents and their duration are published on the status page at status.tallyo.example, and the monthly uptime figure for each service is published there by the 5th business day of the following month. If your own monitoring shows a different figure, the Tallyo measurement is used to decide claims, but you may send us your data with a claim and we will review it.",
            ),
        ],
        [
            ("h1", "Service Credits"),
            (
                "p",
                "If the Monthly Uptime Percentage of a covered service falls below 99.9% in a calendar month, you are entitled to a service credit. The credit is a percentage of the subscription fee for that month, according to the table below.",
            ),
            (
                "table",
                [
                    ["Monthly Uptime Percentage", "Team plan credit", "Business plan credit"],
                    ["99.0% to less than 99.9%", "10%", "15%"],
                    ["95.0% to less than 99.0%", "25%", "30%"],
                    ["Less than 95.0%", "50%", "60%"],
                ],
            ),
            (
                "p",
                "For annual subscriptions, the monthly subscription fee is the annual fee divided by 12. Add-ons, extra seats and transaction fees charged by Tallyo Pay are not part of the subscription fee and are not used in the calculation.",
            ),
            ("h2", "Limits on service credits"),
            (
                "p",
                "The total service credits for any one calendar month will not exceed 60% of the subscription fee for that month, however many incidents occur. Credits are not cumulative across services: if the web application and the API are down at the same time, the minutes are counted once.",
            ),
            (
                "p",
                "Service credits are applied as a discount on future Tallyo subscription invoices. Credits have no cash value, cannot be transferred to another account, and are never paid out as a refund, even if the account is later cancelled. Unused credits expire 12 months after they are issued.",
            ),
            ("h2", "Repeated failures"),
            (
                "p",
                "If the Monthly Uptime Percentage is below 99.0% in three consecutive calendar months, the account Owner may terminate the subscription by written notice within 30 days after the end of the third month, and receive a prorated refund of any prepaid fees for the remaining term, without the early termination fee.",
            ),
            ("h2", "Sole remedy"),
            (
                "p",
                "Service credits and the termination right above are your sole and exclusive remedies for any failure to meet the uptime commitment. They do not limit your rights under the data protection terms or in case of a security incident.",
            ),
            ("h2", "Example"),
            (
                "p",
                "A Business customer pays $89 per month. In April the web application had 120 minutes of Downtime, so the Monthly Uptime Percentage was 99.72%. This falls in the 99.0% to less than 99.9% band, so the credit is 15% of $89, which is $13.35, deducted from the next subscription invoice.",
            ),
        ],
        [
            ("h1", "Maintenance Windows and Exclusions"),
            ("h2", "Scheduled maintenance"),
            (
                "p",
                "Tallyo may perform scheduled maintenance during the weekly maintenance window, every Sunday from 02:00 to 05:00 UTC. Scheduled maintenance that makes any covered service unavailable is announced on the status page and by email to account Owners at least 5 business days in advance.",
            ),
            (
                "p",
                "Scheduled maintenance that causes downtime is limited to 4 hours per calendar month in total. Downtime during announced scheduled maintenance, up to that limit, does not count against the uptime commitment. Any downtime beyond 4 hours in a month, or outside the announced window, counts as Downtime.",
            ),
            (
                "p",
                "Most releases are deployed without any downtime and are not announced as maintenance. While maintenance is in progress, the application shows error TLY-503 and a link to the status page.",
            ),
            ("h2", "Emergency maintenance"),
            (
                "p",
                "We may carry out emergency maintenance at any time to fix a critical security vulnerability or to prevent data loss. We give at least 2 hours of notice on the status page where possible. Emergency maintenance counts as Downtime unless it is needed because of a vulnerability in third-party software that was disclosed publicly less than 72 hours earlier.",
            ),
            ("h2", "Exclusions"),
            ("p", "The following are excluded from the calculation of Downtime and cannot give rise to service credits:"),
            (
                "ul",
                [
                    "Scheduled maintenance announced as described above, up to 4 hours per month.",
                    "Problems caused by the customer's own equipment, network, browser or internet provider.",
                    "Actions or omissions of the customer or its users, including misuse of the API or exceeding the rate limits.",
                    "Outages of third-party services that Tallyo connects to but does not control, such as Xero, QuickBooks, FreeAgent, banks and card networks.",
                    "Features marked as beta or preview in the application.",
                    "Suspension of the account under the Terms of Service, for example for non-payment.",
                    "Events beyond Tallyo's reasonable control, such as natural disasters, war, acts of government, or a large-scale internet failure not caused by Tallyo.",
                ],
            ),
            (
                "p",
                "A denial-of-service attack against Tallyo is not excluded: downtime caused by such an attack counts as Downtime.",
            ),
        ],
        [
            ("h1", "How to Claim Service Credits"),
            ("p", "Service credits are not applied automatically. The account Owner or an Admin must submit a claim."),
            ("h2", "Deadline"),
            (
                "p",
                "Claims must be received within 30 days after the end of the calendar month in which the Downtime occurred. Claims received later are not accepted.",
            ),
            ("h2", "How to submit a claim"),
            (
                "p",
                "Send the claim by email to sla@tallyo.example with the subject line SLA claim followed by your account ID. The claim must include:",
            ),
            (
                "ul",
                [
                    "the account ID, which starts with ACC-;",
                    "the dates and times (with time zone) of each period of unavailability you are claiming for;",
                    "the affected service: web application, API or payment pages;",
                    "request IDs (starting with req_) or screenshots of the errors, if you have them.",
                ],
            ),
            ("h2", "What happens next"),
            (
                "p",
                "We acknowledge each claim within 2 business days and decide on it within 10 business days of receiving it. The decision is sent by email with the calculated Monthly Uptime Percentage and the credit amount, if any.",
            ),
            (
                "p",
                "Approved credits appear as a separate line on your next subscription invoice, labelled SLA credit with the month it relates to. If the credit is larger than the next invoice, the remainder is carried over to the following invoices until it is used up or expires.",
            ),
            ("h2", "Disagreements"),
            (
                "p",
                "If you disagree with a decision, reply to the decision email within 15 business days with any extra evidence. A second reviewer from outside the support team reviews the claim and the result is final.",
            ),
            ("h2", "Contact"),
            (
                "p",
                "Questions about this SLA: sla@tallyo.example. For live incidents, check status.tallyo.example and contact support at support@tallyo.example; an SLA claim is not a way to report an outage.",
            ),
        ],
    ],
}

PRIVACY = {
    "file": "privacy-policy.pdf",
    "title": "Tallyo Privacy Policy",
    "subject": "Personal data collected by Tallyo, retention and data subject rights",
    "pages": [
        [
            ("h1", "Privacy Policy - Who We Are and What We Collect"),
            (
                "p",
                'This Privacy Policy explains how Tallyo Ltd ("Tallyo", "we") collects and uses personal data when you visit tallyo.example, sign up for Tallyo, or use our invoicing and payment services. It was last updated on 1 March 2025.',
            ),
            (
                "p",
                "Tallyo Ltd is registered in England and Wales with company number 09876543 and its registered office at 4 Ledger Lane, London EC2A 4XY, United Kingdom. Our representative in the European Union is Tallyo Europe Ltd, 12 Harbour Square, Dublin 2, Ireland.",
            ),
            ("h2", "Controller and processor"),
            (
                "p",
                "Tallyo is the controller of the personal data of its own customers and users: the people who sign up, sign in and pay for Tallyo. For the data that our customers store about their own clients, such as names and addresses on invoices, Tallyo acts as a processor on behalf of the customer, under our Data Processing Agreement. If you are a client of a Tallyo customer, please contact that business first.",
            ),
            ("h2", "Data we collect"),
            (
                "p",
                "Account data: your name, email address, phone number, job title, password hash, two-factor authentication settings, and the name, address and tax ID of your business.",
            ),
            (
                "p",
                "Billing data: the billing address, the last 4 digits and expiry date of the card used to pay for Tallyo, and the history of subscription invoices and payments. Full card numbers are handled by our payment processor and never stored by Tallyo.",
            ),
            (
                "p",
                "Customer content: the invoices, customers, products and payments you create in Tallyo, and any files you upload.",
            ),
            (
                "p",
                "Usage data: the pages and features you use, IP address, browser type, device information and the time of each request, collected through server logs.",
            ),
            (
                "p",
                "Support data: the content of emails, chats and calls with our support team. Phone calls to support are recorded for quality and training, and you are told so at the start of the call.",
            ),
            (
                "p",
                "Identity verification data: when you recover an account or activate Tallyo Pay, a copy of an identity document and a selfie, processed by our verification provider.",
            ),
            ("h2", "Cookies"),
            (
                "p",
                "We use strictly necessary cookies to keep you signed in. Analytics cookies are used only if you accept them in the cookie banner, and you can change your choice at any time from the Cookie settings link at the bottom of every page. We do not use advertising cookies inside the application.",
            ),
        ],
        [
            ("h1", "How We Use Data and How Long We Keep It"),
            ("h2", "Purposes and legal bases"),
            (
                "p",
                "We use account and billing data to provide the service and to bill you; the legal basis is the performance of our contract with you. We use usage data to keep the service secure, to prevent fraud and to improve the product; the legal basis is our legitimate interest. We keep billing records because tax law requires it; the legal basis is a legal obligation.",
            ),
            (
                "p",
                "We send product news and marketing emails only if you have opted in, and every such email contains an unsubscribe link. Service emails, such as security alerts and billing notices, are sent to all users and cannot be turned off.",
            ),
            ("p", "We do not sell personal data, and we do not use customer content to train machine learning models."),
            ("h2", "Retention periods"),
            ("p", "We keep personal data only as long as we need it. The standard retention periods are:"),
            (
                "ul",
                [
                    "Account data and customer content: for as long as the account is active, then for 90 days after the end of the paid period, after which it is deleted.",
                    "Billing records of your Tallyo subscription: 7 years after the end of the financial year they relate to, as required by tax law.",
                    "Support tickets and chat transcripts: 3 years after the ticket is closed.",
                    "Recordings of support phone calls: 90 days.",
                    "Server and security logs: 12 months.",
                    "Identity verification documents: deleted 30 days after the verification case is closed.",
                    "Marketing preferences: until you withdraw consent, plus 2 years as proof of the withdrawal.",
                ],
            ),
            (
                "p",
                "Deleted data remains in encrypted backups for up to 35 days before the backups are purged. The Data Retention and Deletion document describes the process after cancellation in detail.",
            ),
            ("h2", "International transfers"),
            (
                "p",
                "Customers who sign up in Europe are hosted in Frankfurt, Germany. Some of our subprocessors are located in the United States; for these transfers we rely on the Standard Contractual Clauses approved by the European Commission and, for UK data, the UK International Data Transfer Addendum.",
            ),
        ],
        [
            ("h1", "Your Rights and How to Contact Us"),
            ("h2", "Your rights under the GDPR"),
            (
                "p",
                "If you are in the European Economic Area or the United Kingdom, you have the following rights over your personal data:",
            ),
            (
                "ul",
                [
                    "Right of access: to receive a copy of the personal data we hold about you.",
                    "Right to rectification: to have inaccurate data corrected.",
                    "Right to erasure: to have your data deleted when we no longer have a reason to keep it.",
                    "Right to restriction: to ask us to stop using your data while a complaint is examined.",
                    "Right to data portability: to receive the data you gave us in a machine-readable format.",
                    "Right to object: to processing based on our legitimate interests, and at any time to direct marketing.",
                    "Right to withdraw consent: where processing is based on consent, without affecting earlier processing.",
                ],
            ),
            ("h2", "How to exercise your rights"),
            (
                "p",
                "Send your request to privacy@tallyo.example, or use the form at Settings > Privacy > Data requests when you are signed in. We may ask you to confirm your identity before we act on a request.",
            ),
            (
                "p",
                "We answer requests within one month of receiving them. For complex or numerous requests we may extend this by a further two months, and we will tell you within the first month if we do. Requests are free of charge unless they are manifestly unfounded or excessive.",
            ),
            (
                "p",
                "Requests about data that a Tallyo customer stores about you as their client are forwarded to that customer within 5 business days, because they decide how that data is used.",
            ),
            ("h2", "Data Protection Officer"),
            (
                "p",
                "Our Data Protection Officer is Miriam Ostrowski. You can contact the Data Protection Officer by email at dpo@tallyo.example or by post at Data Protection Officer, Tallyo Ltd, 4 Ledger Lane, London EC2A 4XY, United Kingdom.",
            ),
            ("h2", "Complaints"),
            (
                "p",
                "If you are not happy with how we handled your data, please contact the DPO first. You also have the right to lodge a complaint with a supervisory authority: in the UK, the Information Commissioner's Office; in the EU, the authority of the country where you live or work.",
            ),
            ("h2", "Changes to this policy"),
            (
                "p",
                "We announce material changes to this policy by email to account Owners at least 30 days before they take effect. Earlier versions are available on request from privacy@tallyo.example.",
            ),
        ],
    ],
}

RETENTION = {
    "file": "data-retention-and-deletion.pdf",
    "title": "Tallyo Data Retention and Deletion",
    "subject": "What happens to account data after cancellation, exports and backups",
    "pages": [
        [
            ("h1", "Data Retention After Cancellation"),
            (
                "p",
                "This document explains what happens to the data in a Tallyo account when the subscription ends, how long each kind of data is kept, and how to get a copy of it before it is deleted. It applies to all plans. For the legal background, see the Privacy Policy.",
            ),
            ("h2", "Timeline after cancellation"),
            (
                "p",
                "When a subscription is cancelled, the account stays fully active until the end of the period that has already been paid for. After that, the following timeline applies:",
            ),
            (
                "table",
                [
                    ["When", "What happens"],
                    ["End of paid period", "Account becomes read-only"],
                    ["Day 1 to day 90", "Sign-in, viewing and export still possible"],
                    ["Day 60", "Reminder email to the Owner"],
                    ["Day 83", "Final warning email to the Owner"],
                    ["Day 90", "Account and content deleted"],
                    ["Day 90 + 35 days", "Last backups containing the data purged"],
                ],
            ),
            (
                "p",
                "During the 90-day read-only period, users can sign in, view and download invoices, and export data, but cannot create or send invoices, and automatic payment reminders and recurring invoices are stopped. Payments your customers make through Tallyo Pay during this period are refunded to them automatically.",
            ),
            ("h2", "Reactivating an account"),
            (
                "p",
                "The Owner can reactivate a read-only account at any time during the 90 days by choosing a plan under Settings > Billing. All data, settings and integrations are restored exactly as they were, and integrations resume syncing within 15 minutes. After day 90 the account cannot be reactivated, and a new account starts empty.",
            ),
            ("h2", "Trials and unpaid accounts"),
            (
                "p",
                "The same 90-day period applies to free trials that end without a plan being chosen, counting from the last day of the trial. Accounts cancelled for non-payment are deleted 90 days after the cancellation date.",
            ),
        ],
        [
            ("h1", "Exporting Your Data Before Deletion"),
            (
                "p",
                "We strongly recommend taking a full export before cancelling, and again before the end of the read-only period. Once the account is deleted, Tallyo support cannot recover any data for you.",
            ),
            ("h2", "Full account export"),
            (
                "p",
                "The Owner or an Admin can start a full export under Settings > Data > Export all data. The export is a single ZIP file containing:",
            ),
            (
                "ul",
                [
                    "customers.csv, invoices.csv, invoice_lines.csv, payments.csv and products.csv;",
                    "a PDF copy of every invoice and credit note ever issued;",
                    "all uploaded attachments, in their original format;",
                    "the audit log, on plans that have one.",
                ],
            ),
            (
                "p",
                "Tallyo emails a download link when the export is ready. Most exports are ready within 1 hour; accounts with more than 50,000 invoices can take up to 24 hours. The download link is valid for 7 days and can be used by the person who started the export only. A new export can be started at any time, but only one export can run at once.",
            ),
            ("h2", "Partial exports"),
            (
                "p",
                "Any list in the application, such as Customers or Invoices, can be exported as CSV or Excel from the Export button above the list. Filters are applied to the export. Partial exports are limited to 100,000 rows.",
            ),
            ("h2", "Exports through the API"),
            (
                "p",
                "Developers can export data through the Tallyo API with a read-only API key. API access keeps working during the read-only period, subject to the normal rate limits of the last paid plan.",
            ),
            ("h2", "Early deletion on request"),
            (
                "p",
                "If you do not want to wait 90 days, the Owner can ask for immediate deletion under Settings > Data > Delete account, or by writing to privacy@tallyo.example from the Owner's address. The Owner must type the account ID to confirm. Deletion starts within 2 business days and is completed within 30 days. Early deletion cannot be undone, and the remaining part of a prepaid subscription is not refunded because of it.",
            ),
        ],
        [
            ("h1", "Backups and Records We Keep Longer"),
            ("h2", "Backups"),
            (
                "p",
                "Tallyo takes encrypted backups of all databases every 6 hours and of file storage every 24 hours. Backups are stored in a second data centre in the same region as the account, so data of European accounts stays in the European Union.",
            ),
            (
                "p",
                "Backups are kept for 35 days and then purged automatically. We cannot delete a single account from a backup, so data deleted from the live system remains in backups until they are purged after 35 days. Backups are used only to restore the service after a failure, never to restore individual accounts on request.",
            ),
            (
                "p",
                "If a backup has to be restored, accounts that were deleted after the backup was taken are deleted again before the service is reopened.",
            ),
            ("h2", "What we keep after deletion"),
            (
                "p",
                "Some records are kept after the account is deleted because the law requires it or because they contain no personal data:",
            ),
            (
                "ul",
                [
                    "Invoices and payment records of your Tallyo subscription (not the invoices you sent to your own customers): 7 years.",
                    "Records of Tallyo Pay transactions required by anti-money-laundering rules: 5 years after the account is closed.",
                    "Security and access logs: 12 months from the date of each entry.",
                    "Aggregated, anonymised statistics that cannot identify you or your customers: indefinitely.",
                ],
            ),
            (
                "p",
                "Your own customers' invoices are not kept by Tallyo after deletion. Many countries require businesses to keep their invoices for several years, so it is your responsibility to export and store them.",
            ),
            ("h2", "Deletion certificate"),
            (
                "p",
                "After deletion is complete, the Owner can ask for a deletion certificate confirming the date on which the account was deleted and the date on which the last backup was purged. Write to privacy@tallyo.example within 12 months of deletion; certificates are issued within 10 business days.",
            ),
        ],
    ],
}

DOCUMENTS = [SLA, PRIVACY, RETENTION]
