import './sidebar.css';
import './status.css';
import './resources.css';
import './runview.css';
import './charts.css';
import './sweeps.css';
import './endpoints.css';
